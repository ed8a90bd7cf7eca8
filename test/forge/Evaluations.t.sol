// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Registry} from "../../contracts/Registry.sol";
import {ChargingLedger} from "../../contracts/ChargingLedger.sol";
import {Evaluations} from "../../contracts/Evaluations.sol";
import {Test} from "./helpers/Test.sol";
import {
    EvaluationsDeployment, LedgerDeployment, SessionTotal, SessionTotalSigner
} from "./helpers/LedgerFixture.sol";

/**
 * @dev Unit and fuzz tests of Evaluations (DESIGN §4.3): numbering and pointers of evaluation records in the block
 * structure shared with the ledger, the reverts of `rate`, eq. 2's bounds, and the bookkeeper per area and period.
 * Times are exact seconds from START, read back with `vm.getBlockTimestamp()` (see Vm.sol on via-IR).
 */
contract EvaluationsTest is Test {
    using SessionTotalSigner for ChargingLedger;

    uint256 internal constant START = 1_700_000_000;
    int256 internal constant MU = EvaluationsDeployment.MU;
    int256 internal constant SIGMA = EvaluationsDeployment.SIGMA;
    uint64 internal constant PERIOD_S = EvaluationsDeployment.BOOKKEEPER_PERIOD_S;
    int256 internal constant NINE = 9e18;

    uint256 internal constant OWNER_KEY = 0xA11CE;
    uint256 internal constant EV_KEY = 0xE1;
    uint256 internal constant EV2_KEY = 0xE2;
    uint256 internal constant EV3_KEY = 0xE3;
    uint256 internal constant SIGNER_KEY = 0x516E3;

    bytes32 internal constant CP1 = keccak256("cp-1");
    bytes32 internal constant CP2 = keccak256("cp-2");
    bytes32 internal constant CP3 = keccak256("cp-3");
    uint64 internal constant AREA = 7;
    uint64 internal constant OTHER_AREA = 9;
    uint256 internal constant PRICE_WEI_PER_KWH = 300_000_000_000_000;
    uint256 internal constant DEPOSIT_WEI = 20_000_000_000_000_000; // covers an EV with R_v < 0 (2 × max energy)
    uint32 internal constant MAX_ENERGY_WH = 20_000;
    uint64 internal constant ENERGY_WH = 5_000;

    Registry internal registry;
    ChargingLedger internal ledger;
    Evaluations internal evaluations;
    address internal owner;
    address internal ev;
    address internal ev2;
    address internal ev3;
    address internal signer;
    uint64 internal meterWh = 1_000_000;

    function setUp() public {
        vm.warp(START);
        (registry, ledger, evaluations) = EvaluationsDeployment.deploy();
        owner = vm.addr(OWNER_KEY);
        ev = vm.addr(EV_KEY);
        ev2 = vm.addr(EV2_KEY);
        ev3 = vm.addr(EV3_KEY);
        signer = vm.addr(SIGNER_KEY);
        vm.label(owner, "owner");
        vm.label(ev, "ev");
        vm.label(ev2, "ev2");
        vm.label(ev3, "ev3");
        vm.label(signer, "cpSigner");
        vm.label(address(ledger), "ledger");
        vm.label(address(evaluations), "evaluations");

        uint64 validUntil = uint64(START + 365 days);
        registry.attest(owner, LedgerDeployment.ROLE_OWNER, validUntil);
        registry.attest(ev, LedgerDeployment.ROLE_EV, validUntil);
        registry.attest(ev2, LedgerDeployment.ROLE_EV, validUntil);
        registry.attest(ev3, LedgerDeployment.ROLE_EV, validUntil);
        vm.startPrank(owner);
        registry.registerChargePoint(CP1, Registry.CpKind.Private, AREA, signer, PRICE_WEI_PER_KWH, 11_000, hex"c0ffee");
        registry.registerChargePoint(CP2, Registry.CpKind.Public, AREA, signer, PRICE_WEI_PER_KWH, 22_000, hex"c0ffee");
        registry.registerChargePoint(CP3, Registry.CpKind.Public, OTHER_AREA, signer, PRICE_WEI_PER_KWH, 22_000, hex"c0ffee");
        vm.stopPrank();
        vm.deal(ev, 100 ether);
        vm.deal(ev2, 100 ether);
        vm.deal(ev3, 100 ether);
    }

    // ================================================================ helpers

    function _openAuthorized(address who, bytes32 cpId) internal returns (uint256 sessionId) {
        vm.prank(who);
        sessionId = ledger.openSession{value: DEPOSIT_WEI}(cpId, MAX_ENERGY_WH);
        vm.prank(signer);
        ledger.authorize(sessionId);
    }

    /// @dev A whole session; `evBehaviour` −1 is a reported violation (B_vi = −1), else B_vi = +1.
    function _session(address who, bytes32 cpId, int8 evBehaviour) internal returns (uint256 sessionId) {
        sessionId = _openAuthorized(who, cpId);
        uint256 now_ = vm.getBlockTimestamp();
        ledger.settle(
            SIGNER_KEY,
            SessionTotal({
                sessionId: sessionId,
                cpId: cpId,
                meterStartWh: meterWh,
                meterStopWh: meterWh + ENERGY_WH,
                startedAt: uint64(now_),
                stoppedAt: uint64(now_ + 3_600),
                evBehaviour: evBehaviour
            })
        );
        meterWh += ENERGY_WH;
    }

    function _rate(address who, uint256 sessionId, uint8 score) internal returns (uint256 evaluationNo) {
        vm.prank(who);
        evaluationNo = evaluations.rate(sessionId, score);
    }

    function _recordNoOf(uint256 sessionId) internal view returns (uint256 recordNo) {
        (,,,,,,,,, recordNo) = ledger.session(sessionId);
    }

    function _period() internal view returns (uint64) {
        return uint64(vm.getBlockTimestamp() / PERIOD_S);
    }

    struct Expected {
        uint256 globalNo;
        uint256 chargingRecordNo;
        uint256 prevOfCp;
        uint256 prevOfEv;
        bytes32 cpId;
        address ev;
        uint8 score;
        int256 before;
        int256 after_;
    }

    function _assertEvaluation(uint256 evaluationNo, Expected memory e) internal view {
        (
            uint256 globalNo,
            uint256 branchNo,
            uint256 chargingRecordNo,
            uint256 prevOfCp,
            uint256 prevOfEv,
            bytes32 cpId,
            address rater,
            uint8 score,
            int256 reputationBefore,
            int256 reputationAfter
        ) = evaluations.evaluationRecord(evaluationNo);
        string memory label = string.concat("evaluation ", vm.toString(evaluationNo), " ");
        assertEq(globalNo, e.globalNo, string.concat(label, "globalNo"));
        assertEq(branchNo, evaluationNo, string.concat(label, "branchNo"));
        assertEq(chargingRecordNo, e.chargingRecordNo, string.concat(label, "chargingRecordNo"));
        assertEq(prevOfCp, e.prevOfCp, string.concat(label, "prevOfCp"));
        assertEq(prevOfEv, e.prevOfEv, string.concat(label, "prevOfEv"));
        assertEq(cpId, e.cpId, string.concat(label, "cpId"));
        assertEq(rater, e.ev, string.concat(label, "ev"));
        assertEq(uint256(score), uint256(e.score), string.concat(label, "score"));
        assertEq(reputationBefore, e.before, string.concat(label, "reputationBefore"));
        assertEq(reputationAfter, e.after_, string.concat(label, "reputationAfter"));
        assertEq(evaluations.evaluationOfRecord(e.chargingRecordNo), evaluationNo, string.concat(label, "of its record"));
    }

    function _assertBetween(int256 value, int256 low, int256 high, string memory message) internal pure {
        if (value < low || value > high) {
            revert(
                string.concat(
                    message, ": ", vm.toString(value), " not in [", vm.toString(low), ", ", vm.toString(high), "]"
                )
            );
        }
    }

    function _min(int256 a, int256 b) internal pure returns (int256) {
        return a < b ? a : b;
    }

    function _max(int256 a, int256 b) internal pure returns (int256) {
        return a > b ? a : b;
    }

    function _next(int256 r, uint8 score, int256 credibility) internal view returns (int256) {
        return evaluations.reputationUpdate(r, score, credibility, MU, SIGMA);
    }

    // ================================================================ records, numbers and pointers

    function test_rate_numbersAndLinksEvaluationsAcrossCpsAndEvs() public {
        // Charging records and evaluations interleave, so the global numbers of the two types interleave too.
        uint256 s1 = _session(ev, CP1, 0); // charging 1, global 1; ev R_v = 1
        uint256 s2 = _session(ev2, CP2, 0); // charging 2, global 2; ev2 R_v = 1
        assertEq(_recordNoOf(s1), 1, "record of s1");
        assertEq(_recordNoOf(s2), 2, "record of s2");

        int256 cp1R1 = _next(0, 3, 1);
        // Independent of the contract's arithmetic: 0 + ½ · 1/(1 + e^(−2)) · 1 · 3 = 1.32119561696682366609 (50 digits).
        _assertBetween(cp1R1, 1.321195616966823666e18 - 1e4, 1.321195616966823666e18 + 1e4, "eq. 2 at R = 0, W = 3");
        assertEq(_rate(ev, s1, 3), 1, "first evaluation number"); // evaluation 1, global 3
        _assertEvaluation(1, Expected(3, 1, 0, 0, CP1, ev, 3, 0, cp1R1));

        uint256 s3 = _session(ev, CP2, 0); // charging 3, global 4; ev R_v = 2
        assertEq(_recordNoOf(s3), 3, "record of s3");

        int256 cp2R1 = _next(0, 2, 1);
        _assertBetween(cp2R1, 0.880797077977882444e18 - 1e4, 0.880797077977882444e18 + 1e4, "eq. 2 at R = 0, W = 2");
        assertEq(_rate(ev2, s2, 2), 2, "second evaluation number"); // evaluation 2, global 5
        _assertEvaluation(2, Expected(5, 2, 0, 0, CP2, ev2, 2, 0, cp2R1));

        int256 cp2R2 = _next(cp2R1, 1, 2);
        assertEq(_rate(ev, s3, 1), 3, "third evaluation number"); // evaluation 3, global 6: CP2's 2nd, ev's 2nd
        _assertEvaluation(3, Expected(6, 3, 2, 1, CP2, ev, 1, cp2R1, cp2R2));

        uint256 s4 = _session(ev2, CP1, 0); // charging 4, global 7; ev2 R_v = 2
        uint256 s5 = _session(ev3, CP3, 0); // charging 5, global 8; ev3 R_v = 1
        int256 cp1R2 = _next(cp1R1, 2, 2);
        assertEq(_rate(ev2, s4, 2), 4, "fourth evaluation number"); // evaluation 4, global 9: CP1's 2nd, ev2's 2nd
        _assertEvaluation(4, Expected(9, 4, 1, 2, CP1, ev2, 2, cp1R1, cp1R2));
        int256 cp3R1 = _next(0, 1, 1);
        assertEq(_rate(ev3, s5, 1), 5, "fifth evaluation number"); // evaluation 5, global 10: firsts of CP3 and ev3
        _assertEvaluation(5, Expected(10, 5, 0, 0, CP3, ev3, 1, 0, cp3R1));

        assertEq(evaluations.reputation(CP1), cp1R2, "R of CP1");
        assertEq(evaluations.reputation(CP2), cp2R2, "R of CP2");
        assertEq(evaluations.reputation(CP3), cp3R1, "R of CP3");
        assertTrue(cp1R2 > cp1R1 && cp2R2 > cp2R1, "ratings above R/D raise R");
        assertEq(evaluations.evaluationCount(), 5, "evaluation count");

        (uint256 sessions, uint256 chargingRecords, uint256 evaluationRecords, uint256 globalRecords) = ledger.counts();
        assertEq(sessions, 5, "sessions");
        assertEq(chargingRecords, 5, "charging records");
        assertEq(evaluationRecords, 5, "evaluation records");
        assertEq(globalRecords, 10, "global records");

        (uint256 lastRecord, uint256 lastEvaluation) = ledger.cpHead(CP1);
        assertEq(lastRecord, 4, "CP1 head record");
        assertEq(lastEvaluation, 4, "CP1 head evaluation");
        (lastRecord, lastEvaluation) = ledger.cpHead(CP2);
        assertEq(lastRecord, 3, "CP2 head record");
        assertEq(lastEvaluation, 3, "CP2 head evaluation");
        (lastRecord, lastEvaluation) = ledger.evHead(ev);
        assertEq(lastRecord, 3, "ev head record");
        assertEq(lastEvaluation, 3, "ev head evaluation");
        (lastRecord, lastEvaluation) = ledger.evHead(ev2);
        assertEq(lastRecord, 4, "ev2 head record");
        assertEq(lastEvaluation, 4, "ev2 head evaluation");
    }

    function test_rate_emitsEvaluated() public {
        uint256 s1 = _session(ev, CP1, 0);
        uint256 s2 = _session(ev, CP1, 0); // ev R_v = 2 when it rates
        _rate(ev, s1, 3);
        int256 before = evaluations.reputation(CP1);
        int256 expectedAfter = _next(before, 1, 2);
        assertTrue(expectedAfter > before && expectedAfter < 3e18, "below D*1 even a 1 raises R, towards 3");

        vm.expectEmit(address(evaluations));
        emit Evaluations.Evaluated(2, CP1, ev, 2, 1, 1, before, expectedAfter);
        vm.prank(ev);
        evaluations.rate(s2, 1);
        assertEq(evaluations.reputation(CP1), expectedAfter, "R after the event");
    }

    function test_unknownEvaluationRecordReverts() public {
        vm.expectRevert(abi.encodeWithSelector(Evaluations.UnknownEvaluation.selector, 0, 0));
        evaluations.evaluationRecord(0);
        _rate(ev, _session(ev, CP1, 0), 2);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.UnknownEvaluation.selector, 2, 1));
        evaluations.evaluationRecord(2);
    }

    // ================================================================ reverts of rate

    function test_rate_unsettledSessionBubblesTheLedgersError() public {
        vm.prank(ev);
        uint256 opened = ledger.openSession{value: DEPOSIT_WEI}(CP1, MAX_ENERGY_WH);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.WrongSessionStatus.selector, opened, ChargingLedger.Status.Opened, ChargingLedger.Status.Settled
            )
        );
        _rate(ev, opened, 3);

        uint256 authorized = _openAuthorized(ev, CP2);
        vm.expectRevert(
            abi.encodeWithSelector(
                ChargingLedger.WrongSessionStatus.selector,
                authorized,
                ChargingLedger.Status.Authorized,
                ChargingLedger.Status.Settled
            )
        );
        _rate(ev, authorized, 3);
        assertEq(evaluations.evaluationCount(), 0, "nothing recorded");
    }

    function test_rate_unknownSessionReverts() public {
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.UnknownSession.selector, 42));
        _rate(ev, 42, 2);
    }

    function test_rate_onlyTheSessionEvRates() public {
        uint256 sessionId = _session(ev, CP1, 0);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.NotSessionEv.selector, sessionId, ev2, ev));
        _rate(ev2, sessionId, 3);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.NotSessionEv.selector, sessionId, signer, ev));
        _rate(signer, sessionId, 3);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.NotSessionEv.selector, sessionId, owner, ev));
        _rate(owner, sessionId, 3);

        // The ledger's numbering inside the failed calls was rolled back with them.
        (,, uint256 evaluationRecords, uint256 globalRecords) = ledger.counts();
        assertEq(evaluationRecords, 0, "evaluation records after foreign raters");
        assertEq(globalRecords, 1, "global records after foreign raters");
        assertEq(_rate(ev, sessionId, 3), 1, "the EV still rates, as evaluation 1");
    }

    function test_rate_onlyOncePerSession() public {
        uint256 sessionId = _session(ev, CP1, 0);
        _rate(ev, sessionId, 3);
        int256 reputation = evaluations.reputation(CP1);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.AlreadyRated.selector, sessionId, 1));
        _rate(ev, sessionId, 3);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.AlreadyRated.selector, sessionId, 1));
        _rate(ev, sessionId, 1);
        assertEq(evaluations.reputation(CP1), reputation, "R unchanged by a refused second rating");
        assertEq(evaluations.evaluationCount(), 1, "evaluation count");
        (, uint256 lastEvaluation) = ledger.cpHead(CP1);
        assertEq(lastEvaluation, 1, "CP head unchanged");
    }

    function test_rate_scoreOutsideOneToThreeReverts() public {
        uint256 sessionId = _session(ev, CP1, 0);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidScore.selector, 0));
        _rate(ev, sessionId, 0);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidScore.selector, 4));
        _rate(ev, sessionId, 4);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidScore.selector, 255));
        _rate(ev, sessionId, 255);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidScore.selector, 4));
        evaluations.reputationUpdate(0, 4, 1, MU, SIGMA);
        assertEq(_rate(ev, sessionId, 1), 1, "a valid score is then accepted");
    }

    function test_constructor_refusesBadParameters() public {
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidMu.selector, int256(1e18)));
        new Evaluations(ledger, 1e18, SIGMA, PERIOD_S);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidMu.selector, int256(0)));
        new Evaluations(ledger, 0, SIGMA, PERIOD_S);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidMu.selector, int256(-2e18)));
        new Evaluations(ledger, -2e18, SIGMA, PERIOD_S);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidSigma.selector, int256(0)));
        new Evaluations(ledger, MU, 0, PERIOD_S);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidSigma.selector, int256(-1)));
        new Evaluations(ledger, MU, -1, PERIOD_S);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidBookkeeperPeriod.selector, uint64(0)));
        new Evaluations(ledger, MU, SIGMA, 0);

        // The smallest values just inside the domain are accepted.
        Evaluations edge = new Evaluations(ledger, 1e18 + 1, 1, 1);
        (int256 mu, int256 sigma) = edge.parameters();
        assertEq(mu, int256(1e18 + 1), "mu");
        assertEq(sigma, int256(1), "sigma");
        assertEq(uint256(edge.bookkeeperPeriod()), 1, "period");
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidMu.selector, int256(1e18)));
        edge.reputationUpdate(0, 2, 1, 1e18, SIGMA);
        vm.expectRevert(abi.encodeWithSelector(Evaluations.InvalidSigma.selector, int256(0)));
        edge.reputationUpdate(0, 2, 1, MU, 0);
    }

    // ================================================================ raters without credibility

    function test_rate_byEvWithoutCredibilityIsRecordedButChangesNothing() public {
        _rate(ev, _session(ev, CP1, 0), 3);
        int256 reputation = evaluations.reputation(CP1);
        assertTrue(reputation > 0, "R moved by a credible rater");

        uint256 violating = _session(ev3, CP1, -1); // B = −1: ev3's R_v = −1
        assertEq(ledger.credibility(ev3), int256(-1), "R_v after a reported violation");
        assertEq(_rate(ev3, violating, 1), 2, "evaluation number");
        assertEq(evaluations.reputation(CP1), reputation, "R unchanged by R_v = -1");
        _assertEvaluation(2, Expected(4, 2, 1, 0, CP1, ev3, 1, reputation, reputation));

        // R_v = 0 exactly (one violation, one clean session) changes nothing either.
        uint256 clean = _session(ev3, CP1, 0);
        assertEq(ledger.credibility(ev3), int256(0), "R_v back to 0");
        _rate(ev3, clean, 1);
        assertEq(evaluations.reputation(CP1), reputation, "R unchanged by R_v = 0");
        (, uint256 lastEvaluation) = ledger.cpHead(CP1);
        assertEq(lastEvaluation, 3, "both ratings are in the CP's chain");
    }

    // ================================================================ bookkeeper

    function test_bookkeeper_highestCredibilityPerAreaAndPeriod() public {
        uint64 period = _period();
        assertEq(evaluations.currentPeriod(), period, "current period");
        uint256 ev2First = _session(ev2, CP1, 0); // ev2 R_v = 1
        uint256 ev1First = _session(ev, CP2, 0);
        uint256 ev1Second = _session(ev, CP1, 0); // ev R_v = 2
        uint256 ev3First = _session(ev3, CP1, 0);
        uint256 ev3Second = _session(ev3, CP3, 0); // ev3 R_v = 2, and its session at CP3 is in the other area

        assertEq(evaluations.bookkeeper(AREA, period), address(0), "nobody before the first rating");
        _rate(ev2, ev2First, 2);
        assertEq(evaluations.bookkeeper(AREA, period), ev2, "the first rater holds the seat");

        vm.expectEmit(address(evaluations));
        emit Evaluations.BookkeeperChanged(AREA, period, ev, 2);
        _rate(ev, ev1First, 3); // CP2 is in the same area
        assertEq(evaluations.bookkeeper(AREA, period), ev, "a rater with higher R_v takes it");

        _rate(ev3, ev3First, 3); // R_v 2 = the incumbent's 2
        assertEq(evaluations.bookkeeper(AREA, period), ev, "a tie keeps the incumbent");
        _rate(ev, ev1Second, 1); // the incumbent rating again changes nothing
        assertEq(evaluations.bookkeeper(AREA, period), ev, "incumbent rating again");

        assertEq(evaluations.bookkeeper(OTHER_AREA, period), address(0), "the other area is untouched");
        _rate(ev3, ev3Second, 2);
        assertEq(evaluations.bookkeeper(OTHER_AREA, period), ev3, "the other area has its own bookkeeper");
        assertEq(evaluations.bookkeeper(AREA, period), ev, "... and it does not touch this one");

        // The next period starts empty; the first rater there holds it whatever its R_v, the old period is kept.
        vm.warp((uint256(period) + 1) * PERIOD_S);
        assertEq(_period(), period + 1, "warped into the next period");
        assertEq(evaluations.currentPeriod(), period + 1, "current period after the warp");
        assertEq(evaluations.bookkeeper(AREA, period + 1), address(0), "next period starts empty");
        uint256 ev2Second = _session(ev2, CP1, 0); // ev2 R_v = 2
        _rate(ev2, ev2Second, 3);
        assertEq(evaluations.bookkeeper(AREA, period + 1), ev2, "first rater of the new period");
        assertEq(evaluations.bookkeeper(AREA, period), ev, "the past period keeps its bookkeeper");
        assertEq(evaluations.bookkeeper(OTHER_AREA, period + 1), address(0), "other area, new period");
    }

    function test_bookkeeper_incumbentWhoseCredibilityFellIsReplaced() public {
        uint64 period = _period();
        uint256 evRated = _session(ev, CP1, 0);
        _session(ev, CP1, 0);
        _session(ev, CP1, 0); // ev R_v = 3
        uint256 ev2A = _session(ev2, CP2, 0);
        uint256 ev2B = _session(ev2, CP2, 0); // ev2 R_v = 2

        _rate(ev, evRated, 3);
        assertEq(evaluations.bookkeeper(AREA, period), ev, "R_v 3 holds the seat");
        _rate(ev2, ev2A, 3);
        assertEq(evaluations.bookkeeper(AREA, period), ev, "R_v 2 < 3 does not take it");

        _session(ev, CP1, -1);
        _session(ev, CP1, -1); // ev R_v = 1 now, still the incumbent
        assertEq(ledger.credibility(ev), int256(1), "incumbent's R_v fell");
        assertEq(evaluations.bookkeeper(AREA, period), ev, "a fall alone does not unseat");

        vm.expectEmit(address(evaluations));
        emit Evaluations.BookkeeperChanged(AREA, period, ev2, 2);
        _rate(ev2, ev2B, 2);
        assertEq(evaluations.bookkeeper(AREA, period), ev2, "the incumbent's current R_v is compared");
    }

    // ================================================================ eq. 2

    /// @dev R_v ≥ μ·D is capped: every larger R_v gives the same step as R_v = μ·D.
    function test_reputationUpdate_capsTheRaterWeight() public view {
        int256 atCap = evaluations.reputationUpdate(1e18, 3, 6, MU, SIGMA); // μ·D = 6
        assertEq(evaluations.reputationUpdate(1e18, 3, 7, MU, SIGMA), atCap, "R_v 7");
        assertEq(evaluations.reputationUpdate(1e18, 3, 1_000_000, MU, SIGMA), atCap, "R_v 1e6");
        assertEq(evaluations.reputationUpdate(1e18, 3, type(int256).max, MU, SIGMA), atCap, "R_v max");
        assertTrue(evaluations.reputationUpdate(1e18, 3, 5, MU, SIGMA) < atCap, "below the cap the weight grows");
        assertEq(evaluations.reputationUpdate(1e18, 3, 0, MU, SIGMA), 1e18, "R_v 0");
        assertEq(evaluations.reputationUpdate(1e18, 3, type(int256).min, MU, SIGMA), 1e18, "R_v min");
    }

    /// @dev Φ = 1/(1 + e^((R − D)/σ)): ½ at D, one minus its mirror image, never 0 or 1 where it matters.
    function test_damping_isAHalfAtDAndSymmetric() public view {
        assertEq(int256(evaluations.damping(3e18, SIGMA).unwrap()), 0.5e18, "Phi(D)");
        int256 low = evaluations.damping(1e18, SIGMA).unwrap();
        int256 high = evaluations.damping(5e18, SIGMA).unwrap();
        _assertBetween(low + high, 1e18 - 2, 1e18 + 2, "Phi(D - x) + Phi(D + x)");
        // 1/(1 + e^(−4/3)) = 0.79139147267395506... (40 digits)
        _assertBetween(low, 0.791391472673955060e18 - 1e4, 0.791391472673955060e18 + 1e4, "Phi(1)");
        assertEq(int256(evaluations.damping(-1_000e18, 1e12).unwrap()), 1e18, "far below D with tiny sigma");
        assertEq(int256(evaluations.damping(1_000e18, 1e12).unwrap()), 0, "far above D with tiny sigma");
    }

    /**
     * @dev Regression: the step must not pass the target D·W through rounding. With Φ = 1 exactly (tiny σ, R far
     * below D) and w/μ = D exactly (μ = 2, R_v ≥ 6) the step is D·(W − R/D); R/D truncated towards zero used to add
     * up to 2 wei, so R = 2 wei rated 3 became 9e18 + 2.
     */
    function test_reputationUpdate_neverPassesTheTarget() public view {
        for (int256 r = 0; r < 6; r++) {
            for (uint8 w = 1; w <= 3; w++) {
                int256 target = int256(uint256(w)) * 3e18;
                int256 next = evaluations.reputationUpdate(r, w, 6, MU, 1e12);
                _assertBetween(next, r, target, "below the target");
                assertTrue(target - next < 3, "full weight lands within 2 wei of the target");
            }
        }
        int256 fromAbove = evaluations.reputationUpdate(12e18 + 2, 1, 6, MU, 1e30);
        _assertBetween(fromAbove, 3e18, 12e18 + 2, "above the target");
    }

    // ================================================================ fuzz

    function _shape(uint256 rSeed, uint256 wSeed, uint256 rvSeed, uint256 muSeed, uint256 sigmaSeed)
        internal
        pure
        returns (int256 r, uint8 w, int256 rv, int256 mu, int256 sigma)
    {
        r = int256(bound(rSeed, 0, 9e18));
        w = uint8(bound(wSeed, 1, 3));
        rv = int256(bound(rvSeed, 0, 1_005)) - 5;
        mu = int256(bound(muSeed, 1e18 + 1, 20e18));
        sigma = int256(bound(sigmaSeed, 1e12, 100e18));
    }

    /// forge-config: default.fuzz.runs = 2048
    function testFuzz_reputationUpdate_stepsFromRTowardsTheTarget(
        uint256 rSeed,
        uint256 wSeed,
        uint256 rvSeed,
        uint256 muSeed,
        uint256 sigmaSeed
    ) public view {
        (int256 r, uint8 w, int256 rv, int256 mu, int256 sigma) = _shape(rSeed, wSeed, rvSeed, muSeed, sigmaSeed);
        int256 next = evaluations.reputationUpdate(r, w, rv, mu, sigma);
        int256 target = int256(uint256(w)) * 1e18 * 3;
        _assertBetween(next, _min(r, target), _max(r, target), "R_next between R and D*W");
        if (rv <= 0) assertEq(next, r, "R_v <= 0 leaves R unchanged");
    }

    /// forge-config: default.fuzz.runs = 512
    function testFuzz_reputationUpdate_sequenceStaysWithinZeroAndNine(
        uint256 seed,
        uint256 muSeed,
        uint256 sigmaSeed,
        uint256 startSeed
    ) public view {
        int256 mu = int256(bound(muSeed, 1e18 + 1, 20e18));
        int256 sigma = int256(bound(sigmaSeed, 1e12, 100e18));
        int256 r = int256(bound(startSeed, 0, 9e18));
        for (uint256 i = 0; i < 40; i++) {
            uint256 draw = uint256(keccak256(abi.encode(seed, i)));
            uint8 w = uint8(1 + draw % 3);
            int256 rv = int256((draw >> 8) % 1_006) - 5;
            r = evaluations.reputationUpdate(r, w, rv, mu, sigma);
            _assertBetween(r, 0, NINE, string.concat("R after rating ", vm.toString(i)));
        }
    }

    /// @dev The same property through `rate`, with real sessions and R_v growing by one per clean session.
    function testFuzz_rate_sequenceStaysWithinZeroAndNine(uint256 seed) public {
        for (uint256 i = 0; i < 12; i++) {
            uint256 draw = uint256(keccak256(abi.encode(seed, i)));
            address rater = draw % 2 == 0 ? ev : ev2;
            uint256 sessionId = _session(rater, CP1, 0);
            _rate(rater, sessionId, uint8(1 + (draw >> 8) % 3));
            _assertBetween(evaluations.reputation(CP1), 0, NINE, "R of CP1");
        }
        assertEq(evaluations.evaluationCount(), 12, "all ratings recorded");
    }
}
