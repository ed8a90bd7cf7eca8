// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";

/**
 * @dev The cheatcode handle, input shaping and assertions, for tests and for invariant handlers alike. Assertions
 * revert with `Error(string)` ("<message>: <left> != <right>"), which forge prints as the failure reason; forge 1.x
 * fails a test on any revert, so nothing else is needed (no DSTest `failed()` slot, no `IS_TEST()`).
 */
abstract contract Assertions {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    // ---------------------------------------------------------------- fuzz input shaping

    /// @dev Maps any `x` into [min, max] (both inclusive) without discarding runs the way `vm.assume` does.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + x % (size + 1);
    }

    // ---------------------------------------------------------------- assertions

    function assertEq(uint256 left, uint256 right, string memory message) internal pure {
        if (left != right) _fail(message, vm.toString(left), "!=", vm.toString(right));
    }

    function assertEq(int256 left, int256 right, string memory message) internal pure {
        if (left != right) _fail(message, vm.toString(left), "!=", vm.toString(right));
    }

    function assertEq(address left, address right, string memory message) internal pure {
        if (left != right) _fail(message, vm.toString(left), "!=", vm.toString(right));
    }

    function assertEq(bytes32 left, bytes32 right, string memory message) internal pure {
        if (left != right) _fail(message, vm.toString(left), "!=", vm.toString(right));
    }

    function assertEq(bool left, bool right, string memory message) internal pure {
        if (left != right) _fail(message, vm.toString(left), "!=", vm.toString(right));
    }

    function assertEq(bytes memory left, bytes memory right, string memory message) internal pure {
        if (keccak256(left) != keccak256(right)) _fail(message, vm.toString(left), "!=", vm.toString(right));
    }

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) revert(string.concat(message, ": expected true, got false"));
    }

    function assertLe(uint256 left, uint256 right, string memory message) internal pure {
        if (left > right) _fail(message, vm.toString(left), ">", vm.toString(right));
    }

    function assertGt(uint256 left, uint256 right, string memory message) internal pure {
        if (left <= right) _fail(message, vm.toString(left), "<=", vm.toString(right));
    }

    function _fail(string memory message, string memory left, string memory relation, string memory right)
        private
        pure
    {
        revert(string.concat(message, ": ", left, " ", relation, " ", right));
    }
}

/**
 * @dev Base of the forge suites, in place of forge-std's `Test`.
 *
 * Invariant targets: forge calls `targetContracts()` and `targetSelectors()` on the test contract when they exist
 * (also `excludeContracts()`, `targetSenders()`… which we do not need); an empty list means "every contract deployed
 * in setUp", which would also fuzz the ledger directly, so invariant suites register their handler in setUp.
 */
abstract contract Test is Assertions {
    /// @dev Same shape forge decodes from `targetSelectors()`: `(address,bytes4[])[]`.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetedContracts;
    FuzzSelector[] private _targetedSelectors;

    function targetContracts() public view returns (address[] memory) {
        return _targetedContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetedSelectors;
    }

    function targetContract(address target) internal {
        _targetedContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selection) internal {
        _targetedSelectors.push(selection);
    }
}
