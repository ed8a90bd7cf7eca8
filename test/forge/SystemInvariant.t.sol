// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Registry} from "../../contracts/Registry.sol";
import {ChargingLedger} from "../../contracts/ChargingLedger.sol";
import {Evaluations} from "../../contracts/Evaluations.sol";
import {Test} from "./helpers/Test.sol";
import {EvaluationsDeployment} from "./helpers/LedgerFixture.sol";
import {SystemHandler} from "./helpers/SystemHandler.sol";

/**
 * @dev Issue 11's randomized invariant campaign across Registry, ChargingLedger and Evaluations: funds conservation to
 * the wei, no session settled twice, every record's pointers point backwards, reputation within its bound. Each
 * `invariant_…` function is its own campaign of runs × depth = 320 × 32 = 10,240 handler calls (forge prints
 * "runs: 320, calls: 10240, reverts: 0" per invariant); with fail-on-revert every one of them either did what the
 * handler predicted or was refused with the exact error it predicted. `afterInvariant` then closes everything and
 * checks no wei is stuck.
 *
 * The auction's entry point (`openAuctionSession`) is left to PricingAuctionInvariant.t.sol: reaching it needs a whole
 * auction per session, which would starve the actions below of calls.
 */
/// forge-config: default.invariant.fail-on-revert = true
/// forge-config: default.invariant.runs = 320
/// forge-config: default.invariant.depth = 32
contract SystemInvariantTest is Test {
    /// @dev R_cp never leaves [0, D·W_max] = [0, 9] (SD59x18): each step of eq. 2 is a convex step towards D·W.
    int256 internal constant MAX_REPUTATION = 9e18;

    Registry internal registry;
    ChargingLedger internal ledger;
    Evaluations internal evaluations;
    SystemHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        (registry, ledger, evaluations) = EvaluationsDeployment.deploy();
        handler = new SystemHandler(registry, ledger, evaluations, address(this));
        handler.seed();

        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](16);
        selectors[0] = SystemHandler.attest.selector;
        selectors[1] = SystemHandler.registerChargePoint.selector;
        selectors[2] = SystemHandler.setPrice.selector;
        selectors[3] = SystemHandler.setActive.selector;
        selectors[4] = SystemHandler.rotateSigner.selector;
        selectors[5] = SystemHandler.openSession.selector;
        selectors[6] = SystemHandler.authorize.selector;
        selectors[7] = SystemHandler.settle.selector;
        selectors[8] = SystemHandler.settleForged.selector;
        selectors[9] = SystemHandler.cancel.selector;
        selectors[10] = SystemHandler.expire.selector;
        selectors[11] = SystemHandler.rate.selector;
        selectors[12] = SystemHandler.payDebt.selector;
        selectors[13] = SystemHandler.withdraw.selector;
        selectors[14] = SystemHandler.warp.selector;
        selectors[15] = SystemHandler.openSession.selector; // opens twice as often: most actions need a session
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /**
     * @dev At the end of every run nothing is stuck: after both timeouts every live session is cancelled or expired,
     * every debt paid and every credit withdrawn, and then the ledger holds exactly 0 wei. (The call count is forge's
     * own "calls: runs × depth, reverts: 0": with fail-on-revert a run that stopped early fails the campaign.)
     */
    function afterInvariant() public {
        handler.closeEverything();
        assertEq(handler.ghostHeldWei(), 0, "no deposit held after closing every session");
        assertEq(
            handler.ghostDepositedWei() + handler.ghostDebtPaidWei(),
            handler.ghostWithdrawnWei(),
            "all paid in paid out"
        );
        address[] memory accounts = handler.accounts();
        for (uint256 i = 0; i < accounts.length; ++i) {
            assertEq(ledger.withdrawable(accounts[i]), 0, "no credit left after withdrawing");
            assertEq(ledger.debt(accounts[i]), 0, "no debt left after paying");
        }
        assertEq(address(ledger).balance, 0, "the ledger holds nothing once everything is settled and withdrawn");
    }

    /**
     * @dev Funds conservation, exact wei: the ledger holds the deposits of live sessions plus every credit, each
     * account's credit is what the handler's own bookkeeping says, and money in minus money out is the balance.
     */
    function invariant_fundsConserved() public view {
        uint256 heldWei;
        for (uint256 id = 1; id <= handler.sessionCount(); ++id) {
            (,,, uint256 heldDeposit,,,,,,) = ledger.session(id);
            heldWei += heldDeposit;
        }
        address[] memory accounts = handler.accounts();
        uint256 creditWei;
        for (uint256 i = 0; i < accounts.length; ++i) {
            uint256 withdrawable = ledger.withdrawable(accounts[i]);
            assertEq(withdrawable, handler.ghostCreditWei(accounts[i]), "withdrawable == ghost credit");
            creditWei += withdrawable;
        }
        uint256 owedToOwnersWei;
        for (uint256 i = 0; i < handler.EV_COUNT(); ++i) {
            address ev = handler.evs(i);
            uint256 debtWei = ledger.debt(ev);
            assertEq(debtWei, handler.debtOf(ev), "debt == ghost debt");
            owedToOwnersWei += debtWei;
        }
        assertEq(heldWei, handler.ghostHeldWei(), "held deposits == ghost");
        assertEq(address(ledger).balance, heldWei + creditWei, "balance == held deposits + withdrawable");
        assertEq(
            address(ledger).balance,
            handler.ghostDepositedWei() + handler.ghostDebtPaidWei() - handler.ghostWithdrawnWei(),
            "balance == deposited + debt paid - withdrawn"
        );
        assertEq(
            owedToOwnersWei, handler.ghostDebtIncurredWei() - handler.ghostDebtPaidWei(), "debt == incurred - paid"
        );
        assertEq(address(evaluations).balance, 0, "Evaluations never holds money");
        assertEq(address(registry).balance, 0, "Registry never holds money");
    }

    /**
     * @dev No session settled twice: the handler settled each at most once (its replays were all refused with
     * `AlreadySettled`), the ledger's status is the handler's, and a settled session owns exactly one charging record.
     */
    function invariant_noSessionSettledTwice() public view {
        uint256 settled;
        (uint256 sessions, uint256 chargingRecords,,) = ledger.counts();
        assertEq(sessions, handler.sessionCount(), "sessions == ghost sessions");
        for (uint256 id = 1; id <= sessions; ++id) {
            SystemHandler.SessionGhost memory ghost = handler.sessionGhost(id);
            (,, ChargingLedger.Status status,,,,,,, uint256 recordNo) = ledger.session(id);
            assertLe(ghost.settles, 1, "a session settled at most once");
            assertEq(uint256(status), uint256(ghost.status), "ledger status == ghost status");
            assertEq(status == ChargingLedger.Status.Settled, ghost.settles == 1, "settled iff settled once");
            assertEq(recordNo, ghost.recordNo, "a settled session's record");
            if (recordNo != 0) {
                (,, uint256 sessionOfRecord,,,,,,,) = ledger.chargingRecord(recordNo);
                assertEq(sessionOfRecord, id, "the record points back to its session");
            }
            settled += ghost.settles;
        }
        assertEq(chargingRecords, settled, "one charging record per settle");
        assertEq(chargingRecords, handler.ghostSettles(), "charging records == ghost settles");
    }

    /**
     * @dev Pointers point backwards (paper Fig. 2): every charging record's and evaluation's previous-of-CP and
     * previous-of-EV are lower numbers of the same CP / EV (exactly the ghost's), an evaluation's charging record is
     * older than the evaluation in the global sequence, the global numbers are the handler's (one sequence, no gaps),
     * and walking each list from its head visits every record of that CP or EV once, newest first.
     */
    function invariant_pointersPointBackwards() public view {
        (,, uint256 evaluationRecords, uint256 globalRecords) = ledger.counts();
        assertEq(evaluationRecords, handler.ghostRatings(), "evaluation records == ghost ratings");
        assertEq(evaluations.evaluationCount(), evaluationRecords, "Evaluations' count == ledger's");
        assertEq(globalRecords, handler.ghostGlobalRecords(), "global records == ghost");
        assertEq(globalRecords, handler.recordCount() + evaluationRecords, "one global sequence across both types");
        bytes32[] memory cpIds = new bytes32[](handler.cpCount());
        for (uint256 i = 0; i < cpIds.length; ++i) {
            cpIds[i] = handler.cpGhost(i).cpId;
        }
        Links memory charging = _checkChargingRecords(cpIds);
        Links memory rated = _checkEvaluationRecords(cpIds, charging);
        for (uint256 i = 0; i < handler.cpCount(); ++i) {
            SystemHandler.CpGhost memory cp = handler.cpGhost(i);
            (uint256 lastChargingRecord, uint256 lastEvaluation) = ledger.cpHead(cp.cpId);
            assertEq(lastChargingRecord, cp.lastChargingRecord, "cpHead charging == newest");
            assertEq(lastEvaluation, cp.lastEvaluation, "cpHead evaluation == newest");
            _walk(charging, lastChargingRecord, true, uint256(cp.cpId), cp.chargingRecords);
            _walk(rated, lastEvaluation, true, uint256(cp.cpId), cp.evaluations);
        }
        for (uint256 i = 0; i < handler.EV_COUNT(); ++i) {
            address ev = handler.evs(i);
            SystemHandler.EvGhost memory ghost = handler.evGhost(ev);
            (uint256 lastChargingRecord, uint256 lastEvaluation) = ledger.evHead(ev);
            assertEq(lastChargingRecord, ghost.lastChargingRecord, "evHead charging == newest");
            assertEq(lastEvaluation, ghost.lastEvaluation, "evHead evaluation == newest");
            _walk(charging, lastChargingRecord, false, uint256(uint160(ev)), ghost.chargingRecords);
            _walk(rated, lastEvaluation, false, uint256(uint160(ev)), ghost.evaluations);
        }
    }

    /**
     * @dev Reputation R_cp stays within [0, 9] (SD59x18) and follows eq. 2 from its previous value; credibility R_v is
     * the running sum of B_vi ∈ {−1, 0, +1} (eq. 1), so |R_v| ≤ the EV's settled sessions. R_v itself is not bounded
     * by [0, 9] in the model: it is a count that goes negative after violations and grows with clean sessions; what
     * eq. 2 bounds is the rater weight w = min(R_v, μ·D) ∈ [0, μ·D], whose effect is checked per evaluation: each step
     * lands between R and D·W, and a rater with R_v ≤ 0 moves nothing.
     */
    function invariant_reputationAndCredibilityBounded() public view {
        for (uint256 i = 0; i < handler.cpCount(); ++i) {
            SystemHandler.CpGhost memory cp = handler.cpGhost(i);
            int256 reputation = evaluations.reputation(cp.cpId);
            assertTrue(reputation >= 0 && reputation <= MAX_REPUTATION, "R_cp within [0, 9e18]");
            assertEq(reputation, cp.reputation, "R_cp == eq. 2 applied to the ghost's ratings");
        }
        uint256 evaluationCount = handler.evaluationCount();
        int256[] memory reputationAfter = new int256[](evaluationCount + 1);
        for (uint256 e = 1; e <= evaluationCount; ++e) {
            SystemHandler.EvaluationGhost memory ghost = handler.evaluationGhost(e);
            (,,,,,,, uint8 score, int256 before, int256 next) = evaluations.evaluationRecord(e);
            assertEq(uint256(score), uint256(ghost.score), "stored score");
            assertTrue(score >= 1 && score <= 3, "score W in {1, 2, 3}");
            assertEq(before, ghost.reputationBefore, "reputation before");
            assertEq(next, ghost.reputationAfter, "reputation after");
            assertTrue(next >= 0 && next <= MAX_REPUTATION, "every R_cp ever written within [0, 9e18]");
            // The reason the bound holds: each step lands between R and the target D·W, never beyond it.
            int256 target = int256(uint256(score)) * 3e18;
            assertTrue(
                before <= target ? next >= before && next <= target : next <= before && next >= target,
                "R_next lies between R and D*W"
            );
            if (ghost.raterCredibility <= 0) assertEq(next, before, "a rater with R_v <= 0 changes nothing");
            reputationAfter[e] = next;
            if (ghost.prevOfCp != 0) {
                assertEq(
                    before, reputationAfter[ghost.prevOfCp], "R_cp before == the CP's previous evaluation's R_cp after"
                );
            } else {
                assertEq(before, 0, "a CP's first evaluation starts from R_cp = 0");
            }
        }
        for (uint256 i = 0; i < handler.EV_COUNT(); ++i) {
            address ev = handler.evs(i);
            SystemHandler.EvGhost memory ghost = handler.evGhost(ev);
            int256 credibility = ledger.credibility(ev);
            assertEq(credibility, ghost.credibility, "R_v == sum of B_vi");
            uint256 magnitude = uint256(credibility < 0 ? -credibility : credibility);
            assertLe(magnitude, ghost.settledSessions, "|R_v| <= settled sessions");
        }
    }

    // ================================================================ pointer checks

    /// @dev One record type's list fields as read from the contracts (index = record number), for walking in memory.
    struct Links {
        bytes32[] cpIds;
        address[] evs;
        uint256[] prevOfCp;
        uint256[] prevOfEv;
        uint256[] globalNos;
    }

    function _newLinks(uint256 count) internal pure returns (Links memory links) {
        links.cpIds = new bytes32[](count + 1);
        links.evs = new address[](count + 1);
        links.prevOfCp = new uint256[](count + 1);
        links.prevOfEv = new uint256[](count + 1);
        links.globalNos = new uint256[](count + 1);
    }

    function _checkChargingRecords(bytes32[] memory cpIds) internal view returns (Links memory links) {
        uint256 count = handler.recordCount();
        links = _newLinks(count);
        for (uint256 r = 1; r <= count; ++r) {
            SystemHandler.ChargingRecordGhost memory ghost = handler.recordGhost(r);
            (
                uint256 globalNo,
                uint256 branchNo,
                uint256 sessionId,
                bytes32 cpId,
                address ev,,,,
                uint256 prevOfCp,
                uint256 prevOfEv
            ) = ledger.chargingRecord(r);
            assertEq(branchNo, r, "branch number == record number");
            assertEq(globalNo, ghost.globalNo, "charging record's global number");
            assertEq(sessionId, ghost.sessionId, "charging record's session");
            assertEq(cpId, cpIds[ghost.cpIndex], "charging record's CP");
            assertEq(ev, ghost.ev, "charging record's EV");
            assertTrue(prevOfCp < r, "prevOfCp < recordNo");
            assertTrue(prevOfEv < r, "prevOfEv < recordNo");
            assertEq(prevOfCp, ghost.prevOfCp, "prevOfCp == the CP's newest earlier record");
            assertEq(prevOfEv, ghost.prevOfEv, "prevOfEv == the EV's newest earlier record");
            (links.cpIds[r], links.evs[r], links.prevOfCp[r], links.prevOfEv[r], links.globalNos[r]) =
            (cpId, ev, prevOfCp, prevOfEv, globalNo);
        }
    }

    function _checkEvaluationRecords(bytes32[] memory cpIds, Links memory charging)
        internal
        view
        returns (Links memory links)
    {
        uint256 count = handler.evaluationCount();
        links = _newLinks(count);
        for (uint256 e = 1; e <= count; ++e) {
            SystemHandler.EvaluationGhost memory ghost = handler.evaluationGhost(e);
            (
                uint256 globalNo,
                uint256 branchNo,
                uint256 chargingRecordNo,
                uint256 prevOfCp,
                uint256 prevOfEv,
                bytes32 cpId,
                address ev,,,
            ) = evaluations.evaluationRecord(e);
            assertEq(branchNo, e, "branch number == evaluation number");
            assertEq(globalNo, ghost.globalNo, "evaluation's global number");
            assertEq(chargingRecordNo, ghost.chargingRecordNo, "evaluation's charging record");
            assertEq(cpId, cpIds[ghost.cpIndex], "evaluation's CP");
            assertEq(ev, ghost.ev, "evaluation's EV");
            assertTrue(prevOfCp < e, "evaluation prevOfCp < evaluationNo");
            assertTrue(prevOfEv < e, "evaluation prevOfEv < evaluationNo");
            assertEq(prevOfCp, ghost.prevOfCp, "evaluation prevOfCp == the CP's newest earlier evaluation");
            assertEq(prevOfEv, ghost.prevOfEv, "evaluation prevOfEv == the EV's newest earlier evaluation");
            assertTrue(
                chargingRecordNo >= 1 && chargingRecordNo < charging.globalNos.length, "evaluation rates a known record"
            );
            assertTrue(
                charging.globalNos[chargingRecordNo] < globalNo, "an evaluation is newer than the record it rates"
            );
            assertEq(charging.cpIds[chargingRecordNo], cpId, "an evaluation's CP is its charging record's");
            assertEq(charging.evs[chargingRecordNo], ev, "an evaluation's EV is its charging record's");
            assertEq(evaluations.evaluationOfRecord(chargingRecordNo), e, "the record knows its evaluation");
            (links.cpIds[e], links.evs[e], links.prevOfCp[e], links.prevOfEv[e], links.globalNos[e]) =
            (cpId, ev, prevOfCp, prevOfEv, globalNo);
        }
    }

    /**
     * @dev Algorithm 1 in memory: from `head`, follow the CP's (`byCp`) or the EV's pointers; every step goes strictly
     * backwards, stays on records of `owner` (a cpId or an address) and the walk visits exactly `expectedCount`.
     */
    function _walk(Links memory links, uint256 head, bool byCp, uint256 owner, uint256 expectedCount) internal pure {
        uint256 visited;
        for (uint256 n = head; n != 0; ++visited) {
            uint256 ownerOfRecord = byCp ? uint256(links.cpIds[n]) : uint256(uint160(links.evs[n]));
            assertEq(ownerOfRecord, owner, "a list visits only its own CP's or EV's records");
            uint256 prev = byCp ? links.prevOfCp[n] : links.prevOfEv[n];
            assertTrue(prev < n, "a walk goes strictly backwards");
            n = prev;
        }
        assertEq(visited, expectedCount, "a list from its head visits every record of its CP or EV");
    }
}
