// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Registry} from "../../contracts/Registry.sol";
import {ChargingLedger} from "../../contracts/ChargingLedger.sol";
import {Test} from "./helpers/Test.sol";
import {LedgerDeployment, SessionTotal, SessionTotalSigner} from "./helpers/LedgerFixture.sol";

/// @dev Refuses every payment, to make `withdraw`'s transfer fail.
contract RejectingReceiver {
    receive() external payable {
        revert("no thanks");
    }

    function open(ChargingLedger ledger, bytes32 cpId) external payable returns (uint256) {
        return ledger.openSession{value: msg.value}(cpId, 1_000);
    }

    function cancel(ChargingLedger ledger, uint256 sessionId) external {
        ledger.cancel(sessionId);
    }

    function withdraw(ChargingLedger ledger) external {
        ledger.withdraw();
    }
}

/**
 * @dev Unit and fuzz tests of ChargingLedger (DESIGN §4.2). Amounts are exact wei; times are exact seconds from START,
 * never `block.timestamp` (see Vm.sol on via-IR).
 */
contract ChargingLedgerTest is Test {
    using SessionTotalSigner for ChargingLedger;

    uint256 internal constant START = 1_700_000_000;
    uint64 internal constant AUTH_TIMEOUT_S = LedgerDeployment.AUTH_TIMEOUT_S;
    uint64 internal constant SETTLE_TIMEOUT_S = LedgerDeployment.SETTLE_TIMEOUT_S;

    uint256 internal constant OWNER_KEY = 0xA11CE;
    uint256 internal constant EV_KEY = 0xE1;
    uint256 internal constant EV2_KEY = 0xE2;
    uint256 internal constant SIGNER_KEY = 0x516E3;
    uint256 internal constant STRANGER_KEY = 0xBAD;

    bytes32 internal constant CP_ID = keccak256("cp-1");
    bytes32 internal constant CP2_ID = keccak256("cp-2");
    uint256 internal constant PRICE_WEI_PER_KWH = 300_000_000_000_000; // 0.0003 ether per kWh
    uint256 internal constant DEPOSIT_WEI = 10_000_000_000_000_000; // 0.01 ether
    uint32 internal constant MAX_ENERGY_WH = 20_000;
    uint64 internal constant METER_START_WH = 1_000_000;

    Registry internal registry;
    ChargingLedger internal ledger;
    address internal owner;
    address internal ev;
    address internal ev2;
    address internal signer;
    address internal stranger;

    function setUp() public {
        vm.warp(START);
        (registry, ledger) = LedgerDeployment.deploy();
        owner = vm.addr(OWNER_KEY);
        ev = vm.addr(EV_KEY);
        ev2 = vm.addr(EV2_KEY);
        signer = vm.addr(SIGNER_KEY);
        stranger = vm.addr(STRANGER_KEY);
        vm.label(owner, "owner");
        vm.label(ev, "ev");
        vm.label(ev2, "ev2");
        vm.label(signer, "cpSigner");
        vm.label(stranger, "stranger");
        vm.label(address(ledger), "ledger");
        vm.label(address(registry), "registry");

        uint64 validUntil = uint64(START + 365 days);
        registry.attest(owner, LedgerDeployment.ROLE_OWNER, validUntil);
        registry.attest(ev, LedgerDeployment.ROLE_EV, validUntil);
        registry.attest(ev2, LedgerDeployment.ROLE_EV, validUntil);
        vm.startPrank(owner);
        registry.registerChargePoint(CP_ID, Registry.CpKind.Private, 7, signer, PRICE_WEI_PER_KWH, 11_000, hex"c0ffee");
        registry.registerChargePoint(CP2_ID, Registry.CpKind.Public, 7, signer, PRICE_WEI_PER_KWH, 22_000, hex"c0ffee");
        vm.stopPrank();
        vm.deal(ev, 100 ether);
        vm.deal(ev2, 100 ether);
    }

    // ================================================================ helpers

    function _open(address who, uint256 depositWei, uint32 maxEnergyWh) internal returns (uint256 sessionId) {
        vm.prank(who);
        sessionId = ledger.openSession{value: depositWei}(CP_ID, maxEnergyWh);
    }

    function _openAuthorized(address who, uint256 depositWei) internal returns (uint256 sessionId) {
        sessionId = _open(who, depositWei, MAX_ENERGY_WH);
        vm.prank(signer);
        ledger.authorize(sessionId);
    }

    function _total(uint256 sessionId, uint64 energyWh, int8 evBehaviour) internal pure returns (SessionTotal memory) {
        return SessionTotal({
            sessionId: sessionId,
            cpId: CP_ID,
            meterStartWh: METER_START_WH,
            meterStopWh: METER_START_WH + energyWh,
            startedAt: uint64(START + 60),
            stoppedAt: uint64(START + 3_660),
            evBehaviour: evBehaviour
        });
    }

    function _settleAs(address relayer, SessionTotal memory total, bytes memory signature) internal {
        vm.prank(relayer);
        ledger.submit(total, signature);
    }

    function _status(uint256 sessionId) internal view returns (ChargingLedger.Status status) {
        (, , status, , , , , , , ) = ledger.session(sessionId);
    }

    function _heldDeposit(uint256 sessionId) internal view returns (uint256 heldDeposit) {
        (, , , heldDeposit, , , , , , ) = ledger.session(sessionId);
    }

    // ================================================================ happy path, exact wei

    function test_settle_paysOwnerAndRefundsEvInExactWei() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 12_345, 0);
        // 12 345 Wh × 0.0003 ether/kWh = 0.0037035 ether, exact (no rounding).
        uint256 costWei = 3_703_500_000_000_000;
        uint256 refundWei = 6_296_500_000_000_000;

        vm.expectEmit(address(ledger));
        emit ChargingLedger.SessionSettled(sessionId, CP_ID, ev, 12_345, costWei, refundWei, 1, 1);
        _settleAs(stranger, total, ledger.sign(SIGNER_KEY, total)); // anyone may relay

        assertEq(ledger.withdrawable(owner), costWei, "owner credit");
        assertEq(ledger.withdrawable(ev), refundWei, "EV refund");
        assertEq(ledger.withdrawable(stranger), 0, "relayer credit");
        assertEq(ledger.debt(ev), 0, "EV debt");
        assertEq(address(ledger).balance, DEPOSIT_WEI, "ledger holds the deposit until withdrawals");
        assertEq(ledger.credibility(ev), int256(1), "B_vi for a clean, paid session");
        assertTrue(ledger.canCharge(ev), "EV may charge again");

        (uint256 sessions, uint256 chargingRecords, uint256 evaluationRecords, uint256 globalRecords) = ledger.counts();
        assertEq(sessions, 1, "sessions");
        assertEq(chargingRecords, 1, "charging records");
        assertEq(evaluationRecords, 0, "evaluation records");
        assertEq(globalRecords, 1, "global records");

        (
            bytes32 cpId,
            address sessionEv,
            ChargingLedger.Status status,
            uint256 heldDeposit,
            uint256 pricePerKWh,
            uint32 maxEnergyWh,
            uint64 stampedAt,
            uint64 energyWh,
            int8 evScore,
            uint256 recordNo
        ) = ledger.session(sessionId);
        assertEq(cpId, CP_ID, "session cpId");
        assertEq(sessionEv, ev, "session ev");
        assertEq(uint256(status), uint256(ChargingLedger.Status.Settled), "session status");
        assertEq(heldDeposit, 0, "held deposit after settle");
        assertEq(pricePerKWh, PRICE_WEI_PER_KWH, "session price");
        assertEq(maxEnergyWh, MAX_ENERGY_WH, "session max energy");
        assertEq(stampedAt, START, "authorization time");
        assertEq(energyWh, 12_345, "session energy");
        assertEq(int256(evScore), int256(1), "session score");
        assertEq(recordNo, 1, "session record");

        _assertRecord(1, 1, sessionId, ev, 12_345, costWei, 1, 0, 0);
        (uint256 cpLastRecord, uint256 cpLastEvaluation) = ledger.cpHead(CP_ID);
        assertEq(cpLastRecord, 1, "cp head record");
        assertEq(cpLastEvaluation, 0, "cp head evaluation");
        (uint256 evLastRecord,) = ledger.evHead(ev);
        assertEq(evLastRecord, 1, "ev head record");

        uint256 evBalance = ev.balance;
        uint256 ownerBalance = owner.balance;
        vm.prank(ev);
        ledger.withdraw();
        vm.prank(owner);
        ledger.withdraw();
        assertEq(ev.balance - evBalance, refundWei, "EV withdrew its refund");
        assertEq(owner.balance - ownerBalance, costWei, "owner withdrew the cost");
        assertEq(address(ledger).balance, 0, "ledger empty");
        assertEq(ledger.withdrawable(ev), 0, "EV withdrawable after withdraw");
    }

    function test_settle_roundsCostUpToTheWei() public {
        vm.prank(owner);
        registry.setPrice(CP_ID, 1_001);
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 1, 0);
        ledger.settle(total.sessionId, total.meterStartWh, total.meterStopWh, total.startedAt, total.stoppedAt, 0, ledger.sign(SIGNER_KEY, total));
        // 1 Wh × 1001 wei/kWh = 1.001 wei: the pile is paid 2, never less than it delivered.
        assertEq(ledger.withdrawable(owner), 2, "owner credit rounds up");
        assertEq(ledger.withdrawable(ev), DEPOSIT_WEI - 2, "EV refund");
    }

    function test_settle_costEqualToDepositLeavesNoDebt() public {
        uint256 sessionId = _openAuthorized(ev, 3_703_500_000_000_000);
        SessionTotal memory total = _total(sessionId, 12_345, 0);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, total);
        assertEq(ledger.withdrawable(owner), 3_703_500_000_000_000, "owner credit");
        assertEq(ledger.withdrawable(ev), 0, "EV refund");
        assertEq(ledger.debt(ev), 0, "EV debt");
        assertEq(ledger.credibility(ev), int256(1), "paid in full");
    }

    function test_settle_chainsRecordsPerChargePointAndPerEv() public {
        uint256 first = _openAuthorized(ev, DEPOSIT_WEI);
        uint256 second = _openAuthorized(ev2, DEPOSIT_WEI);
        uint256 third = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(first, 100, 0));
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(second, 200, 0));
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(third, 300, 0));

        _assertRecord(2, 2, second, ev2, 200, 60_000_000_000_000, 1, 1, 0);
        _assertRecord(3, 3, third, ev, 300, 90_000_000_000_000, 1, 2, 1);
        (uint256 evLastRecord,) = ledger.evHead(ev);
        assertEq(evLastRecord, 3, "ev head");
        (uint256 ev2LastRecord,) = ledger.evHead(ev2);
        assertEq(ev2LastRecord, 2, "ev2 head");
    }

    function test_settle_zeroEnergyRefundsAllAndScoresZero() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(sessionId, 0, 0));
        assertEq(ledger.withdrawable(ev), DEPOSIT_WEI, "full refund");
        assertEq(ledger.withdrawable(owner), 0, "owner credit");
        assertEq(ledger.credibility(ev), int256(0), "no energy scores 0");
    }

    // ================================================================ settle is once, and only with the pile's signature

    function test_settle_secondSettleRevertsAlreadySettled() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 12_345, 0);
        bytes memory signature = ledger.sign(SIGNER_KEY, total);
        _settleAs(stranger, total, signature);

        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.AlreadySettled.selector, sessionId));
        _settleAs(stranger, total, signature);

        // A different, validly signed total for the same session is refused just the same.
        SessionTotal memory other = _total(sessionId, 1, 0);
        bytes memory otherSignature = ledger.sign(SIGNER_KEY, other);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.AlreadySettled.selector, sessionId));
        _settleAs(ev, other, otherSignature);
        assertEq(ledger.withdrawable(owner), 3_703_500_000_000_000, "owner paid once");
    }

    function test_settle_signatureReplayedOnAnotherSessionRejected() public {
        uint256 first = _openAuthorized(ev, DEPOSIT_WEI);
        uint256 second = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(first, 12_345, 0);
        bytes32 digest = ledger.sessionTotalDigest(
            first, CP_ID, total.meterStartWh, total.meterStopWh, total.startedAt, total.stoppedAt, 0
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(SIGNER_KEY, digest);
        bytes memory signature = abi.encodePacked(r, s, v);
        _settleAs(stranger, total, signature);

        total.sessionId = second;
        bytes32 replayDigest = ledger.sessionTotalDigest(
            second, CP_ID, total.meterStartWh, total.meterStopWh, total.startedAt, total.stoppedAt, 0
        );
        address recovered = ecrecover(replayDigest, v, r, s);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.InvalidSignature.selector, second, recovered, signer));
        _settleAs(stranger, total, signature);
        assertEq(uint256(_status(second)), uint256(ChargingLedger.Status.Authorized), "second session untouched");
    }

    function test_settle_tamperedTotalRejected() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 12_345, 0);
        bytes memory signature = ledger.sign(SIGNER_KEY, total);
        total.meterStopWh -= 10_000; // the EV relays a smaller total under the pile's signature
        bytes32 digest = ledger.sessionTotalDigest(
            sessionId, CP_ID, total.meterStartWh, total.meterStopWh, total.startedAt, total.stoppedAt, 0
        );
        address recovered = _recover(digest, signature);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.InvalidSignature.selector, sessionId, recovered, signer));
        _settleAs(ev, total, signature);
    }

    function test_settle_signatureOfAnotherKeyRejected() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 12_345, 0);
        // The owner may authorize, but only the registered signer's totals settle.
        bytes memory ownerSignature = ledger.sign(OWNER_KEY, total); // before expectRevert: it calls the ledger
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.InvalidSignature.selector, sessionId, owner, signer));
        _settleAs(owner, total, ownerSignature);
    }

    function test_settle_usesTheSignerRegisteredAtSettleTime() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 12_345, 0);
        bytes memory oldSignature = ledger.sign(SIGNER_KEY, total);
        address newSigner = vm.addr(STRANGER_KEY);
        vm.prank(owner);
        registry.setSigner(CP_ID, newSigner);

        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.InvalidSignature.selector, sessionId, signer, newSigner));
        _settleAs(ev, total, oldSignature);
        _settleAs(ev, total, ledger.sign(STRANGER_KEY, total));
        assertEq(uint256(_status(sessionId)), uint256(ChargingLedger.Status.Settled), "settled by the new signer");
    }

    function test_settle_malformedSignatureRejected() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 12_345, 0);
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.InvalidSignature.selector, sessionId, address(0), signer)
        );
        _settleAs(ev, total, hex"00");
    }

    function test_settle_onlyAuthorizedSessions() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        SessionTotal memory total = _total(sessionId, 100, 0);
        bytes memory signature = ledger.sign(SIGNER_KEY, total);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.WrongSessionStatus.selector,
                sessionId,
                ChargingLedger.Status.Opened,
                ChargingLedger.Status.Authorized
            )
        );
        _settleAs(ev, total, signature);

        total.sessionId = 99;
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.UnknownSession.selector, 99));
        _settleAs(ev, total, signature);
    }

    function test_settle_rejectsMeterAndClockGoingBackwards() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 0, 0);
        total.meterStopWh = METER_START_WH - 1;
        bytes memory signature = ledger.sign(SIGNER_KEY, total);
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.MeterWentBackwards.selector, METER_START_WH, METER_START_WH - 1)
        );
        _settleAs(ev, total, signature);

        total = _total(sessionId, 10, 0);
        (total.startedAt, total.stoppedAt) = (total.stoppedAt, total.startedAt);
        signature = ledger.sign(SIGNER_KEY, total);
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.StopBeforeStart.selector, total.startedAt, total.stoppedAt)
        );
        _settleAs(ev, total, signature);
    }

    function test_settle_rejectsEnergyAboveUint48() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 0, 0);
        total.meterStartWh = 0;
        total.meterStopWh = uint64(type(uint48).max) + 1;
        bytes memory signature = ledger.sign(SIGNER_KEY, total);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.EnergyTooLarge.selector, uint256(type(uint48).max) + 1, uint256(type(uint48).max)
            )
        );
        _settleAs(ev, total, signature);
    }

    // ================================================================ EIP-712

    function test_sessionTotalDigest_matchesHandComputedEip712() public view {
        SessionTotal memory total = _total(42, 12_345, -1);
        bytes32 typeHash = keccak256(
            "SessionTotal(uint256 sessionId,bytes32 cpId,uint64 meterStartWh,uint64 meterStopWh,uint64 startedAt,uint64 stoppedAt,int8 evBehaviour)"
        );
        assertEq(ledger.SESSION_TOTAL_TYPEHASH(), typeHash, "type hash");
        bytes32 domainSeparator = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("TrustPile"),
                keccak256("1"),
                block.chainid,
                address(ledger)
            )
        );
        // int8 −1 is encoded sign-extended to 32 bytes (0xff…ff), as EIP-712 requires for intN.
        bytes32 structHash = keccak256(
            abi.encodePacked(
                typeHash,
                uint256(42),
                CP_ID,
                uint256(METER_START_WH),
                uint256(METER_START_WH + 12_345),
                uint256(START + 60),
                uint256(START + 3_660),
                type(uint256).max
            )
        );
        bytes32 expected = keccak256(abi.encodePacked(hex"1901", domainSeparator, structHash));
        bytes32 digest = ledger.sessionTotalDigest(
            42, CP_ID, total.meterStartWh, total.meterStopWh, total.startedAt, total.stoppedAt, -1
        );
        assertEq(digest, expected, "EIP-712 digest");

        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            ledger.eip712Domain();
        assertEq(keccak256(bytes(name)), keccak256("TrustPile"), "domain name");
        assertEq(keccak256(bytes(version)), keccak256("1"), "domain version");
        assertEq(chainId, block.chainid, "domain chain");
        assertEq(verifyingContract, address(ledger), "domain contract");
    }

    /// @dev The same digest from an independent implementation: ethers 6.17 `TypedDataEncoder.hash` for chain 31337,
    /// the ledger at the address forge deploys it to here, and the total above (session 42, −1).
    function test_sessionTotalDigest_matchesEthersVector() public view {
        assertEq(address(ledger), 0x2e234DAe75C793f67A35089C9d99245E1C58470b, "vector computed for this ledger address");
        assertEq(block.chainid, 31_337, "vector computed for this chain");
        SessionTotal memory total = _total(42, 12_345, -1);
        bytes32 digest = ledger.sessionTotalDigest(
            42, CP_ID, total.meterStartWh, total.meterStopWh, total.startedAt, total.stoppedAt, -1
        );
        assertEq(digest, ETHERS_DIGEST, "digest from ethers");
    }

    bytes32 internal constant ETHERS_DIGEST = 0x4ac4719eb424fa4aa92068f46a2df7130a09f6b0bda3354d827e238db28eb56a;

    // ================================================================ authorize, cancel and expire timing

    function test_authorize_allowedAtAuthTimeout() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        vm.warp(START + AUTH_TIMEOUT_S);
        vm.expectEmit(address(ledger));
        emit ChargingLedger.SessionAuthorized(sessionId, CP_ID);
        vm.prank(signer);
        ledger.authorize(sessionId);
        assertEq(uint256(_status(sessionId)), uint256(ChargingLedger.Status.Authorized), "authorized");
    }

    function test_authorize_closedAtAuthTimeoutPlusOne() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        vm.warp(START + AUTH_TIMEOUT_S + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.AuthorizationWindowClosed.selector, sessionId, START + AUTH_TIMEOUT_S
            )
        );
        vm.prank(signer);
        ledger.authorize(sessionId);
    }

    function test_authorize_byOwnerButNotByOthers() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NotAuthorizer.selector, sessionId, ev));
        vm.prank(ev);
        ledger.authorize(sessionId);
        vm.prank(owner);
        ledger.authorize(sessionId);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.WrongSessionStatus.selector,
                sessionId,
                ChargingLedger.Status.Authorized,
                ChargingLedger.Status.Opened
            )
        );
        vm.prank(signer);
        ledger.authorize(sessionId);
    }

    function test_cancel_tooEarlyAtAuthTimeout() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        vm.warp(START + AUTH_TIMEOUT_S);
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.TooEarly.selector, sessionId, START + AUTH_TIMEOUT_S + 1)
        );
        vm.prank(ev);
        ledger.cancel(sessionId);
    }

    function test_cancel_allowedAtAuthTimeoutPlusOne() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        vm.warp(START + AUTH_TIMEOUT_S + 1);
        vm.expectEmit(address(ledger));
        emit ChargingLedger.SessionCancelled(sessionId, CP_ID, ev);
        vm.prank(ev);
        ledger.cancel(sessionId);
        assertEq(uint256(_status(sessionId)), uint256(ChargingLedger.Status.Cancelled), "cancelled");
        assertEq(_heldDeposit(sessionId), 0, "held deposit");
        assertEq(ledger.withdrawable(ev), DEPOSIT_WEI, "full refund");
        assertEq(ledger.withdrawable(owner), 0, "owner credit");
    }

    function test_cancel_onlyByTheSessionEv() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        vm.warp(START + AUTH_TIMEOUT_S + 1);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NotSessionEv.selector, sessionId, ev2));
        vm.prank(ev2);
        ledger.cancel(sessionId);
    }

    function test_cancel_notOnceAuthorized() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        vm.warp(START + AUTH_TIMEOUT_S + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.WrongSessionStatus.selector,
                sessionId,
                ChargingLedger.Status.Authorized,
                ChargingLedger.Status.Opened
            )
        );
        vm.prank(ev);
        ledger.cancel(sessionId);
    }

    function test_expire_tooEarlyAtSettleTimeoutFromAuthorization() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        uint256 authorizedAt = START + 100;
        vm.warp(authorizedAt);
        vm.prank(signer);
        ledger.authorize(sessionId);

        // The timeout runs from authorization, not from opening.
        vm.warp(authorizedAt + SETTLE_TIMEOUT_S);
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.TooEarly.selector, sessionId, authorizedAt + SETTLE_TIMEOUT_S + 1)
        );
        ledger.expire(sessionId);
    }

    function test_expire_allowedAtSettleTimeoutPlusOneForAnyone() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        uint256 authorizedAt = START + 100;
        vm.warp(authorizedAt);
        vm.prank(signer);
        ledger.authorize(sessionId);

        vm.warp(authorizedAt + SETTLE_TIMEOUT_S + 1);
        vm.expectEmit(address(ledger));
        emit ChargingLedger.SessionExpired(sessionId, CP_ID, ev);
        vm.prank(stranger);
        ledger.expire(sessionId);
        assertEq(uint256(_status(sessionId)), uint256(ChargingLedger.Status.Expired), "expired");
        assertEq(ledger.withdrawable(ev), DEPOSIT_WEI, "full refund");
        assertEq(ledger.withdrawable(stranger), 0, "caller credit");

        SessionTotal memory total = _total(sessionId, 100, 0);
        bytes memory signature = ledger.sign(SIGNER_KEY, total);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.WrongSessionStatus.selector,
                sessionId,
                ChargingLedger.Status.Expired,
                ChargingLedger.Status.Authorized
            )
        );
        _settleAs(signer, total, signature);
    }

    function test_expire_notAnOpenedSession() public {
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        vm.warp(START + SETTLE_TIMEOUT_S + 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.WrongSessionStatus.selector,
                sessionId,
                ChargingLedger.Status.Opened,
                ChargingLedger.Status.Authorized
            )
        );
        ledger.expire(sessionId);
    }

    // ================================================================ opening

    function test_open_checksChargePointEvAndDeposit() public {
        vm.startPrank(ev);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.UnknownChargePoint.selector, keccak256("nope")));
        ledger.openSession{value: DEPOSIT_WEI}(keccak256("nope"), MAX_ENERGY_WH);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.ZeroMaxEnergy.selector));
        ledger.openSession{value: DEPOSIT_WEI}(CP_ID, 0);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.ZeroDeposit.selector));
        ledger.openSession(CP_ID, MAX_ENERGY_WH);
        vm.stopPrank();

        uint256 tooMuch = uint256(type(uint88).max) + 1;
        vm.deal(ev, tooMuch);
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.DepositTooLarge.selector, tooMuch, uint256(type(uint88).max))
        );
        vm.prank(ev);
        ledger.openSession{value: tooMuch}(CP_ID, MAX_ENERGY_WH);

        vm.deal(stranger, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NotAttestedEv.selector, stranger));
        vm.prank(stranger);
        ledger.openSession{value: DEPOSIT_WEI}(CP_ID, MAX_ENERGY_WH);

        vm.prank(owner);
        registry.setActive(CP_ID, false);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.ChargePointInactive.selector, CP_ID));
        vm.prank(ev);
        ledger.openSession{value: DEPOSIT_WEI}(CP_ID, MAX_ENERGY_WH);
    }

    function test_open_recordsTermsAndEmits() public {
        vm.expectEmit(address(ledger));
        emit ChargingLedger.SessionOpened(1, CP_ID, ev, DEPOSIT_WEI, PRICE_WEI_PER_KWH, MAX_ENERGY_WH);
        uint256 sessionId = _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);
        assertEq(sessionId, 1, "first session id");
        assertEq(_heldDeposit(sessionId), DEPOSIT_WEI, "held deposit");
        assertEq(address(ledger).balance, DEPOSIT_WEI, "ledger balance");

        // The price is fixed at opening: a later price change does not reach this session.
        vm.prank(owner);
        registry.setPrice(CP_ID, PRICE_WEI_PER_KWH * 2);
        vm.prank(signer);
        ledger.authorize(sessionId);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(sessionId, 12_345, 0));
        assertEq(ledger.withdrawable(owner), 3_703_500_000_000_000, "cost at the opening price");
    }

    // ================================================================ debt and credibility

    function test_debt_shortfallBlocksOpeningUntilPaid() public {
        uint256 depositWei = 1_000_000_000_000_000;
        uint256 sessionId = _openAuthorized(ev, depositWei);
        uint256 costWei = 3_703_500_000_000_000;
        uint256 shortfallWei = costWei - depositWei;

        vm.expectEmit(address(ledger));
        emit ChargingLedger.DebtIncurred(ev, owner, shortfallWei);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(sessionId, 12_345, 0));
        assertEq(ledger.withdrawable(owner), depositWei, "owner gets the whole deposit");
        assertEq(ledger.withdrawable(ev), 0, "no refund");
        assertEq(ledger.debt(ev), shortfallWei, "debt");
        assertEq(ledger.credibility(ev), int256(0), "overshoot debt scores 0");
        assertTrue(!ledger.canCharge(ev), "in debt");

        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.OutstandingDebt.selector, ev, shortfallWei));
        _open(ev, DEPOSIT_WEI, MAX_ENERGY_WH);

        vm.startPrank(ev);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.ZeroPayment.selector));
        ledger.payDebt();
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.PaymentExceedsDebt.selector, shortfallWei + 1, shortfallWei)
        );
        ledger.payDebt{value: shortfallWei + 1}();

        ledger.payDebt{value: 1_000}();
        assertEq(ledger.debt(ev), shortfallWei - 1_000, "partly paid");
        assertTrue(!ledger.canCharge(ev), "still in debt");
        assertEq(ledger.withdrawable(owner), depositWei + 1_000, "owner credited the part");

        vm.expectEmit(address(ledger));
        emit ChargingLedger.DebtPaid(ev, owner, shortfallWei - 1_000);
        ledger.payDebt{value: shortfallWei - 1_000}();
        assertEq(ledger.debt(ev), 0, "paid");
        assertTrue(ledger.canCharge(ev), "may charge again");
        assertEq(ledger.withdrawable(owner), costWei, "owner has the full cost");

        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NoDebt.selector, ev));
        ledger.payDebt{value: 1}();
        vm.stopPrank();
        assertEq(address(ledger).balance, costWei, "ledger balance");
    }

    function test_debt_paidOldestFirstAcrossOwners() public {
        address owner2 = vm.addr(0xA2);
        registry.attest(owner2, LedgerDeployment.ROLE_OWNER, uint64(START + 1 days));
        bytes32 cp3 = keccak256("cp-3");
        vm.prank(owner2);
        registry.registerChargePoint(cp3, Registry.CpKind.Private, 1, signer, PRICE_WEI_PER_KWH, 7_000, hex"01");

        uint256 first = _openAuthorized(ev, 1_000);
        vm.prank(ev);
        uint256 second = ledger.openSession{value: 1_000}(cp3, MAX_ENERGY_WH);
        vm.prank(signer);
        ledger.authorize(second);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(first, 10, 0)); // cost 3e12
        SessionTotal memory total = _total(second, 20, 0); // cost 6e12
        total.cpId = cp3;
        SessionTotalSigner.settle(ledger, SIGNER_KEY, total);
        assertEq(ledger.debt(ev), 3e12 - 1_000 + 6e12 - 1_000, "two debts");

        vm.prank(ev);
        ledger.payDebt{value: 3e12}();
        assertEq(ledger.withdrawable(owner), 3e12, "first owner paid in full first");
        assertEq(ledger.withdrawable(owner2), 1_000 + 1_000, "second owner: deposit and the rest of the payment");
    }

    function test_credibility_violationScoresMinusOneAndDoublesTheDeposit() public {
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(sessionId, 12_345, -1));
        assertEq(ledger.credibility(ev), int256(-1), "reported violation");
        (,,,,,,,, int8 evScore,) = ledger.session(sessionId);
        assertEq(int256(evScore), int256(-1), "session score");

        // R_v < 0: deposit at least ceil(2 × maxEnergyWh × price / 1000) = 2 × 20 kWh × 0.0003 ether = 0.012 ether.
        uint256 requiredWei = 12_000_000_000_000_000;
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.DepositBelowRequired.selector, requiredWei - 1, requiredWei)
        );
        _open(ev, requiredWei - 1, MAX_ENERGY_WH);
        uint256 next = _open(ev, requiredWei, MAX_ENERGY_WH);
        vm.prank(signer);
        ledger.authorize(next);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(next, 1_000, 0));
        assertEq(ledger.credibility(ev), int256(0), "a clean session earns +1 back");
    }

    // ================================================================ withdrawals and wiring

    function test_withdraw_nothingAndFailedTransfer() public {
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NothingToWithdraw.selector, stranger));
        vm.prank(stranger);
        ledger.withdraw();

        RejectingReceiver receiver = new RejectingReceiver();
        registry.attest(address(receiver), LedgerDeployment.ROLE_EV, uint64(START + 1 days));
        vm.deal(address(this), 1 ether);
        uint256 sessionId = receiver.open{value: DEPOSIT_WEI}(ledger, CP_ID);
        vm.warp(START + AUTH_TIMEOUT_S + 1);
        receiver.cancel(ledger, sessionId);
        vm.expectRevert(
            abi.encodeWithSelector(ChargingLedger.WithdrawFailed.selector, address(receiver), DEPOSIT_WEI)
        );
        receiver.withdraw(ledger);
        assertEq(ledger.withdrawable(address(receiver)), DEPOSIT_WEI, "credit kept after a failed transfer");
    }

    function test_evaluations_wiredOnceByTheDeployer() public {
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NotEvaluations.selector, address(this)));
        ledger.recordEvaluation(1);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NotDeployer.selector, stranger));
        vm.prank(stranger);
        ledger.setEvaluations(stranger);
        ledger.setEvaluations(stranger);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.EvaluationsAlreadyWired.selector, stranger));
        ledger.setEvaluations(address(this));
        assertEq(ledger.evaluations(), stranger, "wired");
    }

    function test_evaluations_numberedInBothSequences() public {
        ledger.setEvaluations(address(this));
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotalSigner.settle(ledger, SIGNER_KEY, _total(sessionId, 100, 0));
        (uint256 evaluationNo, uint256 globalNo, uint256 chargingRecordNo, uint256 prevOfCp, uint256 prevOfEv, bytes32 cpId, address sessionEv, int256 credibility) =
            ledger.recordEvaluation(sessionId);
        assertEq(evaluationNo, 1, "evaluation no");
        assertEq(globalNo, 2, "global no follows the charging record");
        assertEq(chargingRecordNo, 1, "charging record");
        assertEq(prevOfCp, 0, "prev of cp");
        assertEq(prevOfEv, 0, "prev of ev");
        assertEq(cpId, CP_ID, "cp");
        assertEq(sessionEv, ev, "ev");
        assertEq(credibility, 1, "the EV's credibility after its clean session");
        (, uint256 cpLastEvaluation) = ledger.cpHead(CP_ID);
        assertEq(cpLastEvaluation, 1, "cp head evaluation");
    }

    // ================================================================ fuzz

    /// @dev cost = ceil(e × p / 1000); the deposit is split exactly between owner and EV, or all goes to the owner
    /// and the rest becomes debt. Over the whole input space: e < 2^48 Wh, p < 2^80 wei/kWh, deposit < 2^88 wei.
    function testFuzz_settleCost(uint48 energyWh, uint80 price, uint88 deposit) public {
        uint256 priceWeiPerKWh = bound(price, 1, type(uint80).max);
        uint256 depositWei = bound(deposit, 1, type(uint88).max);
        vm.prank(owner);
        registry.setPrice(CP_ID, priceWeiPerKWh);
        vm.deal(ev, depositWei);
        uint256 sessionId = _openAuthorized(ev, depositWei);

        uint256 product = uint256(energyWh) * priceWeiPerKWh;
        uint256 costWei = product / 1000 + (product % 1000 == 0 ? 0 : 1);
        SessionTotal memory total = _total(sessionId, energyWh, 0);
        bytes memory signature = ledger.sign(SIGNER_KEY, total);

        if (costWei > depositWei && costWei - depositWei > type(uint96).max) {
            // Debts are stored in 96 bits (7.9e10 ether): only reachable with prices and energies far beyond any
            // real pile; the session then cannot settle and expires with a full refund.
            vm.expectRevert(
                abi.encodeWithSelector(SafeCast.SafeCastOverflowedUintDowncast.selector, 96, costWei - depositWei)
            );
            _settleAs(stranger, total, signature);
            return;
        }
        _settleAs(stranger, total, signature);

        uint256 ownerCredit = ledger.withdrawable(owner);
        uint256 evRefund = ledger.withdrawable(ev);
        if (costWei <= depositWei) {
            assertEq(ownerCredit, costWei, "owner credit == cost");
            assertEq(evRefund, depositWei - costWei, "EV refund == deposit - cost");
            assertEq(ownerCredit + evRefund, depositWei, "owner + EV == deposit");
            assertEq(ledger.debt(ev), 0, "no debt");
            assertEq(ledger.credibility(ev), energyWh == 0 ? int256(0) : int256(1), "score");
        } else {
            assertEq(ownerCredit, depositWei, "owner gets the deposit");
            assertEq(evRefund, 0, "no refund");
            assertEq(ledger.debt(ev), costWei - depositWei, "debt == cost - deposit");
            assertEq(ledger.credibility(ev), int256(0), "debt scores 0");
        }
        assertEq(address(ledger).balance, depositWei, "ledger balance == deposit");
        (,,,,,, uint256 recordCost,,,) = ledger.chargingRecord(1);
        assertEq(recordCost, costWei, "record cost");
    }

    function testFuzz_evBehaviourOutsideRangeReverts(int8 evBehaviour) public {
        vm.assume(evBehaviour != 0 && evBehaviour != -1);
        uint256 sessionId = _openAuthorized(ev, DEPOSIT_WEI);
        SessionTotal memory total = _total(sessionId, 100, evBehaviour);
        bytes memory signature = ledger.sign(SIGNER_KEY, total); // validly signed: the value itself is refused
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.InvalidEvBehaviour.selector, evBehaviour));
        _settleAs(stranger, total, signature);
    }

    // ================================================================ assertion helpers

    function _assertRecord(
        uint256 recordNo,
        uint256 expectedGlobalNo,
        uint256 expectedSessionId,
        address expectedEv,
        uint64 expectedEnergyWh,
        uint256 expectedCostWei,
        int8 expectedScore,
        uint256 expectedPrevOfCp,
        uint256 expectedPrevOfEv
    ) internal view {
        (
            uint256 globalNo,
            uint256 branchNo,
            uint256 sessionId,
            bytes32 cpId,
            address recordEv,
            uint64 energyWh,
            uint256 cost,
            int8 evScore,
            uint256 prevOfCp,
            uint256 prevOfEv
        ) = ledger.chargingRecord(recordNo);
        assertEq(globalNo, expectedGlobalNo, "record global no");
        assertEq(branchNo, recordNo, "record branch no");
        assertEq(sessionId, expectedSessionId, "record session");
        assertEq(cpId, CP_ID, "record cp");
        assertEq(recordEv, expectedEv, "record ev");
        assertEq(energyWh, expectedEnergyWh, "record energy");
        assertEq(cost, expectedCostWei, "record cost");
        assertEq(int256(evScore), int256(expectedScore), "record score");
        assertEq(prevOfCp, expectedPrevOfCp, "record prev of cp");
        assertEq(prevOfEv, expectedPrevOfEv, "record prev of ev");
    }

    function _recover(bytes32 digest, bytes memory signature) internal pure returns (address) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := mload(add(signature, 0x20))
            s := mload(add(signature, 0x40))
            v := byte(0, mload(add(signature, 0x60)))
        }
        return ecrecover(digest, v, r, s);
    }
}
