// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
import {Test} from "./helpers/Test.sol";
contract ProbeTest is Test {
    function test_passes() public pure { assertEq(uint256(1), 1, "one"); }
    function test_fails() public pure { assertEq(uint256(1), 2, "one vs two"); }
    function test_time() public { vm.warp(100); assertEq(vm.getBlockTimestamp(), 100, "t"); assertEq(block.timestamp, 100, "bt"); }
}
