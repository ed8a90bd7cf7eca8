// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {SD59x18, sd, exp} from "@prb/math/src/SD59x18.sol";
import {ChargingLedger} from "./ChargingLedger.sol";
import {Registry} from "./Registry.sol";

/**
 * @dev The incentive mechanism of the paper (§3.4): after a settled session its EV rates the charge point once
 * (W in {1, 2, 3}), and the charge point's service reputation R_cp moves by eq. 2, weighted by the rater's
 * credibility R_v (eq. 1, kept by the ledger):
 *
 *     R_next = R + (1/μ) · Φ(R) · w · (W − R/D),   Φ(R) = 1 / (1 + e^((R − D)/σ)),   w = min(R_v, μ·D),   D = 3
 *
 * Φ has the sign of the Sporas mechanism the paper builds on: close to 1 while R is low, ½ at R = D, towards 0 for
 * high R, so a good reputation is earned quickly and then held steady. The paper prints a doubled minus that makes
 * Φ grow with R; that freezes a new charge point near 0 and contradicts its own Fig. 5, so it is taken as a typo.
 *
 * The weight is capped at μ·D because the step is (Φ·w/(μ·D)) · (D·W − R): with Φ ≤ 1 and w ≤ μ·D it is a convex
 * step from R towards D·W, so R stays within [0, 9]. An uncapped running sum R_v would overshoot and diverge. A rater
 * with R_v ≤ 0 leaves R unchanged (w = 0) but its evaluation is still recorded.
 *
 * Each evaluation is a record of the paper's block structure: the ledger numbers it in the global and the
 * evaluation sequence and keeps the heads; the record points to its charging record ("Corresponding CP
 * transaction") and to the charge point's previous evaluation ("CP Last evaluation height").
 *
 * Bookkeeper (§3.2, §3.4): in each period of `bookkeeperPeriod` seconds the evaluation bookkeeper of an area is the
 * rater with the highest credibility among the EVs that rated a charge point of that area in the period. It is kept
 * as ratings arrive (one comparison per rating), never by a loop over EVs.
 */
contract Evaluations {
    /// @notice D, the highest score, as an SD59x18 number.
    int256 public constant D = 3e18;
    uint8 public constant MIN_SCORE = 1;
    uint8 public constant MAX_SCORE = 3;

    /// @dev Two slots per evaluation; cpId and ev come from the charging record it points to.
    struct EvaluationLinks {
        uint64 globalNo;
        uint64 chargingRecordNo;
        uint64 prevOfCp;
        uint64 prevOfEv;
    }

    struct EvaluationValues {
        int120 reputationBefore;
        int128 reputationAfter;
        uint8 score;
    }

    ChargingLedger private immutable _ledger;
    Registry private immutable _registry;
    int256 private immutable _mu;
    int256 private immutable _sigma;
    uint64 private immutable _bookkeeperPeriod;

    mapping(bytes32 cpId => int256) private _reputation;
    mapping(uint256 evaluationNo => EvaluationLinks) private _links;
    mapping(uint256 evaluationNo => EvaluationValues) private _values;
    mapping(uint256 chargingRecordNo => uint256 evaluationNo) private _evaluationOfRecord;
    mapping(uint64 areaId => mapping(uint64 period => address ev)) private _bookkeepers;
    uint256 private _evaluationCount;

    event Evaluated(
        uint256 indexed evaluationNo,
        bytes32 indexed cpId,
        address indexed ev,
        uint256 chargingRecordNo,
        uint256 prevEvaluationOfCp,
        uint8 score,
        int256 reputationBefore,
        int256 reputationAfter
    );
    event BookkeeperChanged(uint64 indexed areaId, uint64 indexed period, address indexed ev, int256 credibility);

    error InvalidMu(int256 mu);
    error InvalidSigma(int256 sigma);
    error InvalidBookkeeperPeriod(uint64 periodSeconds);
    error InvalidScore(uint8 score);
    error NotSessionEv(uint256 sessionId, address caller, address ev);
    error AlreadyRated(uint256 sessionId, uint256 evaluationNo);
    error UnknownEvaluation(uint256 evaluationNo, uint256 evaluationCount);

    /// @param mu_ μ > 1 as SD59x18 (2e18 = 2.0); @param sigma_ σ > 0 as SD59x18.
    constructor(ChargingLedger ledger_, int256 mu_, int256 sigma_, uint64 bookkeeperPeriod_) {
        _checkParameters(mu_, sigma_);
        if (bookkeeperPeriod_ == 0) revert InvalidBookkeeperPeriod(bookkeeperPeriod_);
        _ledger = ledger_;
        _registry = ledger_.registry();
        _mu = mu_;
        _sigma = sigma_;
        _bookkeeperPeriod = bookkeeperPeriod_;
    }

    // ================================================================ rating

    /// @notice The session's EV rates the charge point once, after settlement. Returns the evaluation number.
    function rate(uint256 sessionId, uint8 score) external returns (uint256 evaluationNo) {
        if (score < MIN_SCORE || score > MAX_SCORE) revert InvalidScore(score);
        (
            uint256 evaluationNo_,
            uint256 globalNo,
            uint256 chargingRecordNo,
            uint256 prevEvaluationOfCp,
            uint256 prevEvaluationOfEv,
            bytes32 cpId,
            address ev,
            int256 evCredibility
        ) = _ledger.recordEvaluation(sessionId);
        evaluationNo = evaluationNo_;
        // The ledger has numbered the evaluation already; any revert below rolls that back with it.
        if (msg.sender != ev) revert NotSessionEv(sessionId, msg.sender, ev);
        uint256 earlier = _evaluationOfRecord[chargingRecordNo];
        if (earlier != 0) revert AlreadyRated(sessionId, earlier);
        _evaluationOfRecord[chargingRecordNo] = evaluationNo;

        int256 before = _reputation[cpId];
        int256 next = reputationUpdate(before, score, evCredibility, _mu, _sigma);
        _reputation[cpId] = next;
        _evaluationCount = evaluationNo;

        // Record numbers come from the ledger's uint64 counters, so the narrowing below cannot truncate.
        _links[evaluationNo] = EvaluationLinks({
            globalNo: uint64(globalNo),
            chargingRecordNo: uint64(chargingRecordNo),
            prevOfCp: uint64(prevEvaluationOfCp),
            prevOfEv: uint64(prevEvaluationOfEv)
        });
        _values[evaluationNo] = EvaluationValues({
            reputationBefore: SafeCast.toInt120(before),
            reputationAfter: SafeCast.toInt128(next),
            score: score
        });
        emit Evaluated(evaluationNo, cpId, ev, chargingRecordNo, prevEvaluationOfCp, score, before, next);

        _considerBookkeeper(cpId, ev, evCredibility);
    }

    // ================================================================ eq. 2

    /**
     * @notice One step of eq. 2 for reputation R (SD59x18), score W, rater credibility R_v (an integer count) and
     * parameters μ, σ (SD59x18). Public so anyone can check the arithmetic the contract applies.
     * @dev Operations in the order written, (1/μ)·Φ·w·(W − R/D), so a float64 twin can follow them one by one. The
     * gap W − R/D is computed as (D·W − R)/D: one division, truncated towards zero, so |step| ≤ (w/μ)·|W − R/D| ≤
     * |D·W − R| holds in wei too and the step never passes D·W. (Truncating R/D alone made the gap up to 1 wei too
     * large towards D·W, and the step, multiplied by w/μ ≤ D, up to 2 wei past it: R could leave [0, 9e18].)
     */
    function reputationUpdate(int256 cpReputation, uint8 score, int256 raterCredibility, int256 mu, int256 sigma)
        public
        pure
        returns (int256)
    {
        _checkParameters(mu, sigma);
        if (score < MIN_SCORE || score > MAX_SCORE) revert InvalidScore(score);
        SD59x18 r = sd(cpReputation);
        SD59x18 weight = sd(_raterWeight(raterCredibility, mu));
        SD59x18 gap = sd(int256(uint256(score)) * D).sub(r).div(sd(D));
        SD59x18 step = sd(1e18).div(sd(mu)).mul(damping(cpReputation, sigma)).mul(weight).mul(gap);
        return r.add(step).unwrap();
    }

    /// @notice Φ(R) = 1 / (1 + e^((R − D)/σ)), computed so that `exp` only ever sees a non-positive argument.
    function damping(int256 cpReputation, int256 sigma) public pure returns (SD59x18) {
        SD59x18 one = sd(1e18);
        SD59x18 z = sd(cpReputation).sub(sd(D)).div(sd(sigma));
        if (z.unwrap() <= 0) return one.div(one.add(exp(z)));
        SD59x18 e = exp(z.mul(sd(-1e18)));
        return e.div(one.add(e));
    }

    // ================================================================ views

    function ledger() external view returns (ChargingLedger) {
        return _ledger;
    }

    /// @notice μ and σ as SD59x18, fixed at deployment.
    function parameters() external view returns (int256 mu, int256 sigma) {
        return (_mu, _sigma);
    }

    function bookkeeperPeriod() external view returns (uint64) {
        return _bookkeeperPeriod;
    }

    /// @notice The period number a timestamp falls into (period T of `bookkeeper`).
    function periodOf(uint256 timestamp) public view returns (uint64) {
        return uint64(timestamp / _bookkeeperPeriod);
    }

    function currentPeriod() external view returns (uint64) {
        return periodOf(block.timestamp);
    }

    /// @notice R_cp as SD59x18 (1e18 = 1.0); 0 before the first rating.
    function reputation(bytes32 cpId) external view returns (int256) {
        return _reputation[cpId];
    }

    function evaluationCount() external view returns (uint256) {
        return _evaluationCount;
    }

    /// @notice The evaluation of a charging record, 0 if it was not rated.
    function evaluationOfRecord(uint256 chargingRecordNo) external view returns (uint256) {
        return _evaluationOfRecord[chargingRecordNo];
    }

    function evaluationRecord(uint256 evaluationNo)
        public
        view
        returns (
            uint256 globalNo,
            uint256 branchNo,
            uint256 chargingRecordNo,
            uint256 prevOfCp,
            uint256 prevOfEv,
            bytes32 cpId,
            address ev,
            uint8 score,
            int256 reputationBefore,
            int256 reputationAfter
        )
    {
        uint256 count = _evaluationCount;
        if (evaluationNo == 0 || evaluationNo > count) revert UnknownEvaluation(evaluationNo, count);
        EvaluationLinks memory links = _links[evaluationNo];
        EvaluationValues memory values = _values[evaluationNo];
        (,,, cpId, ev,,,,,) = _ledger.chargingRecord(links.chargingRecordNo);
        return (
            links.globalNo,
            evaluationNo,
            links.chargingRecordNo,
            links.prevOfCp,
            links.prevOfEv,
            cpId,
            ev,
            values.score,
            values.reputationBefore,
            values.reputationAfter
        );
    }

    /// @notice The EV with the highest credibility among those that rated in area `areaId` during `period`.
    function bookkeeper(uint64 areaId, uint64 period) external view returns (address) {
        return _bookkeepers[areaId][period];
    }

    // ================================================================ internals

    function _considerBookkeeper(bytes32 cpId, address ev, int256 evCredibility) private {
        uint64 areaId = _registry.areaOf(cpId);
        uint64 period = periodOf(block.timestamp);
        address incumbent = _bookkeepers[areaId][period];
        if (incumbent == ev) return;
        // The incumbent's credibility is read now, not remembered: a bookkeeper whose R_v fell since loses its seat
        // to the next rater who is better. Ties keep the incumbent.
        if (incumbent != address(0) && _ledger.credibility(incumbent) >= evCredibility) return;
        _bookkeepers[areaId][period] = ev;
        emit BookkeeperChanged(areaId, period, ev, evCredibility);
    }

    /// @dev w = min(R_v, μ·D) as SD59x18, and 0 for R_v ≤ 0.
    function _raterWeight(int256 raterCredibility, int256 mu) private pure returns (int256) {
        if (raterCredibility <= 0) return 0;
        int256 cap = sd(mu).mul(sd(D)).unwrap();
        // R_v counts sessions, so anything above the cap in whole units is capped before it could overflow.
        if (raterCredibility >= cap / 1e18 + 1) return cap;
        int256 weight = raterCredibility * 1e18;
        return weight < cap ? weight : cap;
    }

    function _checkParameters(int256 mu, int256 sigma) private pure {
        if (mu <= 1e18) revert InvalidMu(mu);
        if (sigma <= 0) revert InvalidSigma(sigma);
    }
}
