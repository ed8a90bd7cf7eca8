// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @dev The few Foundry cheatcodes these tests use, declared by hand: the npm forge-std is an old unofficial build
 * that does not compile (TOOLCHAIN.md). Signatures follow Foundry's `Vm.sol`; forge matches them by selector, so a
 * typo here fails at run time with "unknown cheatcode", not at compile time.
 *
 * NOTE: with via-IR the optimizer may reuse a `block.timestamp` read across a `warp`; read the current time with
 * `getBlockTimestamp()` after warping, never `block.timestamp`.
 */
interface Vm {
    // ---------------------------------------------------------------- environment
    function warp(uint256 newTimestamp) external;
    function roll(uint256 newHeight) external;
    function getBlockTimestamp() external view returns (uint256 timestamp);
    function deal(address account, uint256 newBalance) external;
    function etch(address target, bytes calldata newRuntimeBytecode) external;

    // ---------------------------------------------------------------- callers
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;

    // ---------------------------------------------------------------- expectations
    function expectRevert() external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert(bytes calldata revertData) external;
    function expectEmit() external;
    function expectEmit(address emitter) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;

    // ---------------------------------------------------------------- keys and signatures
    function addr(uint256 privateKey) external pure returns (address keyAddr);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);

    // ---------------------------------------------------------------- fuzzing and debugging
    function assume(bool condition) external pure;
    function label(address account, string calldata newLabel) external;
    function toString(uint256 value) external pure returns (string memory stringifiedValue);
    function toString(int256 value) external pure returns (string memory stringifiedValue);
    function toString(address value) external pure returns (string memory stringifiedValue);
    function toString(bytes32 value) external pure returns (string memory stringifiedValue);
    function toString(bool value) external pure returns (string memory stringifiedValue);
    function toString(bytes calldata value) external pure returns (string memory stringifiedValue);
}
