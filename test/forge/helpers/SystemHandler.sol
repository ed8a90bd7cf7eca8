// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Registry} from "../../../contracts/Registry.sol";
import {ChargingLedger} from "../../../contracts/ChargingLedger.sol";
import {Evaluations} from "../../../contracts/Evaluations.sol";
import {Assertions} from "./Test.sol";
import {SessionTotal, SessionTotalSigner} from "./LedgerFixture.sol";

/**
 * @dev Drives Registry, ChargingLedger and Evaluations together the way the identity authority, owners, piles, EVs and
 * strangers do (issue 11): attest and revoke, register charge points, change price, activity and signer (key
 * rotation), open, authorize, settle (valid totals, replays, totals signed by an old signer, by another pile, for
 * another session, tampered in transit, above the deposit and above maxEnergyWh), cancel, expire, rate (scores 1..3 by
 * raters of negative, small and capped credibility), pay debts, withdraw, and let time pass.
 *
 * Every call either succeeds or is expected to revert with the exact error the handler predicts from its own ghost
 * model (checked in the contracts' order); the suite runs with fail-on-revert, so a refusal the model did not predict,
 * or a predicted refusal that did not happen, fails the campaign. The ghost model is kept from the handler's own
 * inputs, never read back from the contracts, so the invariants compare two independent accounts of the same history.
 *
 * Actions that need a session in a given state (settle, rate, …) first bring one about through the same internal
 * steps the other actions use, so every call of a selector exercises what the selector is named for.
 */
contract SystemHandler is Assertions {
    uint256 public constant EV_COUNT = 4;
    uint256 public constant OWNER_COUNT = 2;
    uint256 public constant MAX_CPS = 5;
    uint32 internal constant MAX_ENERGY_CAP_WH = 80_000;
    uint32 internal constant MAX_POWER_W = 11_000;
    uint64 internal constant METER_START_WH = 5_000_000;
    uint8 internal constant ROLE_EV = 1;
    uint8 internal constant ROLE_OWNER = 2;
    uint8 internal constant ROLE_OPERATOR = 3;

    Registry public immutable registry;
    ChargingLedger public immutable ledger;
    Evaluations public immutable evaluations;
    /// @dev The identity authority (the test contract, which deployed the Registry).
    address public immutable authority;
    int256 internal immutable _mu;
    int256 internal immutable _sigma;

    address[EV_COUNT] public evs;
    address[OWNER_COUNT] public owners;
    address public immutable stranger;

    // ---------------------------------------------------------------- ghost model

    struct CpGhost {
        bytes32 cpId;
        address owner;
        bool active;
        uint256 priceWeiPerKWh;
        /// @dev The signer key is `_signerKey(cpIndex, signerVersion)`; every earlier version is an old signer.
        uint256 signerVersion;
        uint256 chargingRecords;
        uint256 evaluations;
        uint256 lastChargingRecord;
        uint256 lastEvaluation;
        int256 reputation;
    }

    struct SessionGhost {
        uint256 cpIndex;
        address ev;
        uint256 depositWei;
        uint256 priceWeiPerKWh;
        uint32 maxEnergyWh;
        uint256 stampedAt;
        ChargingLedger.Status status;
        uint256 settles;
        uint256 recordNo;
        uint256 evaluationNo;
    }

    struct ChargingRecordGhost {
        uint256 sessionId;
        uint256 globalNo;
        uint256 cpIndex;
        address ev;
        uint256 prevOfCp;
        uint256 prevOfEv;
    }

    struct EvaluationGhost {
        uint256 globalNo;
        uint256 chargingRecordNo;
        uint256 cpIndex;
        address ev;
        uint256 prevOfCp;
        uint256 prevOfEv;
        uint8 score;
        int256 raterCredibility;
        int256 reputationBefore;
        int256 reputationAfter;
    }

    struct DebtGhost {
        address creditor;
        uint256 amountWei;
    }

    struct EvGhost {
        int256 credibility;
        uint256 chargingRecords;
        uint256 evaluations;
        uint256 lastChargingRecord;
        uint256 lastEvaluation;
        uint256 settledSessions;
    }

    CpGhost[] internal _cps;
    SessionGhost[] internal _sessions; // session id = index + 1
    ChargingRecordGhost[] internal _records; // record no = index + 1
    EvaluationGhost[] internal _evaluations; // evaluation no = index + 1
    mapping(address ev => EvGhost) internal _evGhosts;
    mapping(address ev => DebtGhost[]) internal _debts;
    mapping(address account => uint256 creditWei) public ghostCreditWei;
    mapping(address account => mapping(uint8 role => uint64 validUntil)) public ghostAttestedUntil;
    uint256 public ghostGlobalRecords;

    uint256 public ghostHeldWei; // deposits of sessions still opened or authorized
    uint256 public ghostDepositedWei;
    uint256 public ghostWithdrawnWei;
    uint256 public ghostDebtIncurredWei;
    uint256 public ghostDebtPaidWei;

    uint256 public ghostSettles;
    uint256 public ghostReplaysRefused;
    uint256 public ghostForgeriesRefused;
    uint256 public ghostRatings;
    uint256 public ghostRefusals;
    /// @dev How often each path ran (e.g. "settle.overDeposit"): assert one is 0 in a throwaway invariant to see
    /// the handler still reaches it.
    mapping(string path => uint256 count) public calls;

    constructor(Registry registry_, ChargingLedger ledger_, Evaluations evaluations_, address authority_) {
        registry = registry_;
        ledger = ledger_;
        evaluations = evaluations_;
        authority = authority_;
        (_mu, _sigma) = evaluations_.parameters();
        for (uint256 i = 0; i < EV_COUNT; ++i) {
            evs[i] = vm.addr(0xE0 + i);
            vm.label(evs[i], string.concat("ev", vm.toString(i)));
        }
        for (uint256 i = 0; i < OWNER_COUNT; ++i) {
            owners[i] = vm.addr(0xA0 + i);
            vm.label(owners[i], string.concat("owner", vm.toString(i)));
        }
        stranger = vm.addr(0xBAD);
        vm.label(stranger, "stranger");
    }

    /**
     * @dev Run once from setUp: attests everybody, registers two charge points and plays a history that gives the EVs
     * different credibility (R_v = 7 above the weight cap μ·D = 6, 2, −1 and 0) and one charge point a high reputation,
     * so ratings in the campaign come from raters of every weight class.
     */
    function seed() external {
        uint64 tenYears = uint64(_now() + 3_650 days);
        for (uint256 i = 0; i < EV_COUNT; ++i) {
            _attest(evs[i], ROLE_EV, tenYears);
        }
        for (uint256 i = 0; i < OWNER_COUNT; ++i) {
            _attest(owners[i], ROLE_OWNER, tenYears);
        }
        _attest(owners[1], ROLE_OPERATOR, tenYears);
        _register(owners[0], Registry.CpKind.Private, 100_000_000_000_000);
        _register(owners[1], Registry.CpKind.Operator, 250_000_000_000_001); // not round: costs round up

        for (uint256 i = 0; i < 7; ++i) {
            uint256 sessionId = _openAuthorized(0, i % 2, 0.01 ether);
            _settleValid(sessionId, 10_000, false, evs[0]);
            if (i < 4) _rate(sessionId, 3, evs[0]);
        }
        for (uint256 i = 0; i < 2; ++i) {
            uint256 sessionId = _openAuthorized(1, 1, 0.01 ether);
            _settleValid(sessionId, 5_000, false, evs[1]);
            if (i == 0) _rate(sessionId, 1, evs[1]);
        }
        uint256 violated = _openAuthorized(2, 0, 0.01 ether);
        _settleValid(violated, 1_000, true, evs[2]);
    }

    // ================================================================ registry actions

    function attest(uint256 whoSeed, uint256 roleSeed, uint256 untilSeed, uint256 faultSeed) external {
        address who = _account(whoSeed);
        uint8 role = uint8(bound(roleSeed, ROLE_EV, ROLE_OPERATOR));
        // A third of attestations revoke (0) or set a time already past: the account loses the role now.
        uint64 validUntil = untilSeed % 3 == 0
            ? uint64(untilSeed % 2 == 0 ? 0 : _now() - bound(untilSeed, 0, 1 days))
            : uint64(_now() + bound(untilSeed, 1 hours, 3_650 days));
        uint256 fault = faultSeed % 8;
        if (fault == 0) {
            _expectRevert(abi.encodeWithSelector(Registry.NotAuthority.selector, stranger));
            vm.prank(stranger);
            registry.attest(who, role, validUntil);
            _refused("attest.notAuthority");
            return;
        }
        if (fault == 1) {
            uint8 badRole = faultSeed % 2 == 0 ? 0 : uint8(bound(faultSeed, 4, 255));
            _expectRevert(abi.encodeWithSelector(Registry.InvalidRole.selector, badRole));
            vm.prank(authority);
            registry.attest(who, badRole, validUntil);
            _refused("attest.invalidRole");
            return;
        }
        _attest(who, role, validUntil);
        calls[validUntil > _now() ? "attest" : "attest.revoke"]++;
    }

    function registerChargePoint(uint256 ownerSeed, uint256 kindSeed, uint256 priceSeed, uint256 faultSeed) external {
        address owner = ownerSeed % 5 == 0 ? stranger : owners[ownerSeed % OWNER_COUNT];
        Registry.CpKind kind = Registry.CpKind(kindSeed % 3);
        uint256 price = bound(priceSeed, 1 gwei, 0.001 ether);
        uint256 fault = faultSeed % 8;
        bytes32 cpId = _cps.length == MAX_CPS || fault == 0 ? _cps[faultSeed % _cps.length].cpId : _newCpId();
        address signer = vm.addr(_signerKey(_cps.length, 0));
        if (fault == 1) signer = address(0);
        if (fault == 2) {
            price = faultSeed % 2 == 0 ? 0 : bound(priceSeed, uint256(type(uint80).max) + 1, type(uint256).max);
        }

        bytes memory expected = _registerError(owner, kind, cpId, signer, price);
        if (expected.length != 0) {
            _expectRevert(expected);
            vm.prank(owner);
            registry.registerChargePoint(cpId, kind, 7, signer, price, MAX_POWER_W, hex"01");
            _refused("register.refused");
            return;
        }
        _register(owner, kind, price);
        calls["register"]++;
    }

    function setPrice(uint256 cpSeed, uint256 priceSeed, uint256 faultSeed) external {
        uint256 cpIndex = cpSeed % _cps.length;
        CpGhost storage cp = _cps[cpIndex];
        uint256 fault = faultSeed % 6;
        address caller = fault == 0 ? stranger : cp.owner;
        uint256 price = bound(priceSeed, 1 gwei, 0.001 ether);
        if (fault == 1) {
            price = faultSeed % 2 == 0 ? 0 : bound(priceSeed, uint256(type(uint80).max) + 1, type(uint256).max);
        }
        bytes32 cpId = fault == 2 ? _newCpId() : cp.cpId;

        bytes memory expected = _ownerActionError(cpId, cp.owner, caller);
        if (expected.length == 0 && (price == 0 || price > type(uint80).max)) {
            expected = abi.encodeWithSelector(Registry.InvalidPrice.selector, price, uint256(type(uint80).max));
        }
        _expectRevert(expected);
        vm.prank(caller);
        registry.setPrice(cpId, price);
        if (expected.length != 0) {
            _refused("setPrice.refused");
            return;
        }
        cp.priceWeiPerKWh = price;
        calls["setPrice"]++;
    }

    function setActive(uint256 cpSeed, bool active, uint256 faultSeed) external {
        uint256 cpIndex = cpSeed % _cps.length;
        CpGhost storage cp = _cps[cpIndex];
        address caller = faultSeed % 5 == 0 ? _account(faultSeed) : cp.owner;
        bytes memory expected = _ownerActionError(cp.cpId, cp.owner, caller);
        _expectRevert(expected);
        vm.prank(caller);
        registry.setActive(cp.cpId, active);
        if (expected.length != 0) {
            _refused("setActive.refused");
            return;
        }
        cp.active = active;
        calls[active ? "setActive.on" : "setActive.off"]++;
    }

    /// @dev Key rotation: the pile's signer moves to the next key; totals signed by the old key stop settling.
    function rotateSigner(uint256 cpSeed, uint256 faultSeed) external {
        uint256 cpIndex = cpSeed % _cps.length;
        CpGhost storage cp = _cps[cpIndex];
        uint256 fault = faultSeed % 5;
        if (fault == 0 || fault == 1) {
            address caller = fault == 0 ? stranger : cp.owner;
            address signer = fault == 0 ? vm.addr(_signerKey(cpIndex, cp.signerVersion + 1)) : address(0);
            bytes memory expected = fault == 0
                ? abi.encodeWithSelector(Registry.NotChargePointOwner.selector, cp.cpId, stranger)
                : abi.encodeWithSelector(Registry.ZeroSigner.selector);
            _expectRevert(expected);
            vm.prank(caller);
            registry.setSigner(cp.cpId, signer);
            {
                _refused("rotateSigner.refused");
                return;
            }
        }
        _rotate(cpIndex);
        calls["rotateSigner"]++;
    }

    // ================================================================ session actions

    function openSession(uint256 evSeed, uint256 cpSeed, uint256 energySeed, uint256 depositSeed, uint256 faultSeed)
        external
    {
        address ev = evs[evSeed % EV_COUNT];
        uint256 cpIndex = cpSeed % _cps.length;
        uint32 maxEnergyWh = uint32(bound(energySeed, 1, MAX_ENERGY_CAP_WH));
        uint256 depositWei = bound(depositSeed, 1, 0.05 ether);
        uint256 fault = faultSeed % 8;
        bool unknownCp = fault == 0;
        if (fault == 1) maxEnergyWh = 0;
        if (fault == 2) depositWei = 0;
        // Unless asked to underpay, an EV below R_v,min brings the doubled deposit it needs (DESIGN §4.2).
        uint256 requiredWei = _costWei(2 * uint256(maxEnergyWh), _cps[cpIndex].priceWeiPerKWh);
        if (fault != 3 && fault != 2 && _evGhosts[ev].credibility < 0 && depositWei < requiredWei) {
            depositWei = requiredWei;
        }
        bytes32 cpId = unknownCp ? _newCpId() : _cps[cpIndex].cpId;

        bytes memory expected = _openError(ev, unknownCp, cpIndex, maxEnergyWh, depositWei);
        if (expected.length != 0) {
            vm.deal(ev, ev.balance + depositWei);
            _expectRevert(expected);
            vm.prank(ev);
            ledger.openSession{value: depositWei}(cpId, maxEnergyWh);
            {
                _refused("openSession.refused");
                return;
            }
        }
        _open(ev, cpIndex, maxEnergyWh, depositWei);
        calls["openSession"]++;
    }

    function authorize(uint256 sessionSeed, uint256 callerSeed) external {
        uint256 sessionId = _pickSession(sessionSeed, ChargingLedger.Status.Opened);
        if (sessionId == 0) sessionId = _openEligible(sessionSeed);
        SessionGhost storage s = _sessions[sessionId - 1];
        CpGhost storage cp = _cps[s.cpIndex];
        uint256 choice = callerSeed % 4;
        address caller =
            choice == 0 ? stranger : choice == 1 ? cp.owner : vm.addr(_signerKey(s.cpIndex, cp.signerVersion));

        bytes memory expected = _statusError(sessionId, ChargingLedger.Status.Opened);
        uint256 deadline = s.stampedAt + ledger.authTimeout();
        if (expected.length == 0 && _now() > deadline) {
            expected = abi.encodeWithSelector(ChargingLedger.AuthorizationWindowClosed.selector, sessionId, deadline);
        }
        if (expected.length == 0 && caller == stranger) {
            expected = abi.encodeWithSelector(ChargingLedger.NotAuthorizer.selector, sessionId, stranger);
        }
        _expectRevert(expected);
        vm.prank(caller);
        ledger.authorize(sessionId);
        if (expected.length != 0) {
            _refused("authorize.refused");
            return;
        }
        s.status = ChargingLedger.Status.Authorized;
        s.stampedAt = _now();
        calls["authorize"]++;
    }

    /**
     * @dev A valid total signed by the pile's current key, relayed by the EV or a stranger; a quarter of them meter
     * more than the deposit pays (a debt) and most may exceed maxEnergyWh (not a settle check). The same signed total
     * is then replayed and must be refused with `AlreadySettled`.
     */
    function settle(uint256 sessionSeed, uint256 energySeed, bool violation, uint256 relayerSeed) external {
        uint256 sessionId = _pickSession(sessionSeed, ChargingLedger.Status.Authorized);
        if (sessionId == 0) sessionId = _openAuthorized(sessionSeed % EV_COUNT, sessionSeed % _cps.length, 0);
        SessionGhost storage s = _sessions[sessionId - 1];
        uint256 energyWh;
        if (energySeed % 4 == 0) {
            // One Wh more than the deposit pays at the session's price, and up to 10 kWh beyond.
            energyWh = s.depositWei * 1000 / s.priceWeiPerKWh + 1 + bound(energySeed, 0, 10_000);
        } else {
            energyWh = bound(energySeed, 0, 2 * uint256(s.maxEnergyWh));
        }
        address relayer = relayerSeed % 2 == 0 ? s.ev : stranger;
        (SessionTotal memory total, bytes memory signature) = _settleValid(sessionId, energyWh, violation, relayer);
        calls[
            _costWei(energyWh, s.priceWeiPerKWh) > s.depositWei
                ? "settle.overDeposit"
                : energyWh > s.maxEnergyWh ? "settle.overMaxEnergy" : "settle"
        ]++;

        _expectRevert(abi.encodeWithSelector(ChargingLedger.AlreadySettled.selector, sessionId));
        vm.prank(relayerSeed % 3 == 0 ? s.ev : stranger);
        SessionTotalSigner.submit(ledger, total, signature);
        ++ghostReplaysRefused;
    }

    /**
     * @dev Totals the ledger must refuse: signed by the pile's previous key (after a rotation), by another pile's key,
     * signed for another session, altered after signing, for a session that is not authorized, or malformed.
     */
    function settleForged(uint256 sessionSeed, uint256 kindSeed, uint256 energySeed) external {
        uint256 kind = kindSeed % 7;
        if (kind == 0) {
            _settleNotAuthorized(sessionSeed, energySeed);
            return;
        }
        uint256 sessionId = _pickSession(sessionSeed, ChargingLedger.Status.Authorized);
        if (sessionId == 0) sessionId = _openAuthorized(sessionSeed % EV_COUNT, sessionSeed % _cps.length, 0);
        SessionGhost storage s = _sessions[sessionId - 1];
        uint256 cpIndex = s.cpIndex;
        if (kind == 1 && _cps[cpIndex].signerVersion == 0) _rotate(cpIndex);
        CpGhost storage cp = _cps[cpIndex];
        address currentSigner = vm.addr(_signerKey(cpIndex, cp.signerVersion));

        SessionTotal memory total = _total(sessionId, bound(energySeed, 0, 2 * uint256(s.maxEnergyWh)), false);
        SessionTotal memory signed = total;
        uint256 signerKey = _signerKey(cpIndex, cp.signerVersion);
        string memory path;
        bytes memory expected;
        if (kind == 1) {
            signerKey = _signerKey(cpIndex, bound(kindSeed, 0, cp.signerVersion - 1));
            path = "settleForged.oldSigner";
        } else if (kind == 2) {
            signerKey = _signerKey((cpIndex + 1) % MAX_CPS, 0);
            path = "settleForged.otherPile";
        } else if (kind == 3) {
            signed = _total(sessionId + 1 + kindSeed % 3, total.meterStopWh - total.meterStartWh, false);
            path = "settleForged.otherSession";
        } else if (kind == 4) {
            signed = _total(sessionId, total.meterStopWh - total.meterStartWh + 1 + energySeed % 1000, false);
            path = "settleForged.tampered";
        } else if (kind == 5) {
            total.evBehaviour = int8(uint8(bound(kindSeed, 1, 255)));
            if (total.evBehaviour == -1) total.evBehaviour = -2;
            signed = total;
            expected = abi.encodeWithSelector(ChargingLedger.InvalidEvBehaviour.selector, total.evBehaviour);
            path = "settleForged.badBehaviour";
        } else {
            (total.meterStartWh, total.meterStopWh) = (total.meterStopWh + 1, total.meterStartWh);
            signed = total;
            expected = abi.encodeWithSelector(
                ChargingLedger.MeterWentBackwards.selector, total.meterStartWh, total.meterStopWh
            );
            path = "settleForged.meterBackwards";
        }
        bytes memory signature = SessionTotalSigner.sign(ledger, signerKey, signed);
        if (expected.length == 0) {
            address recovered = _recover(ledger, total, signature);
            assertTrue(recovered != currentSigner, "a forged total never recovers to the current signer");
            expected =
                abi.encodeWithSelector(ChargingLedger.InvalidSignature.selector, sessionId, recovered, currentSigner);
        }
        _expectRevert(expected);
        vm.prank(kindSeed % 2 == 0 ? s.ev : stranger);
        SessionTotalSigner.submit(ledger, total, signature);
        ++ghostForgeriesRefused;
        _refused(path);
    }

    function cancel(uint256 sessionSeed, uint256 callerSeed) external {
        uint256 sessionId = _pickSession(sessionSeed, ChargingLedger.Status.Opened);
        if (sessionId == 0) sessionId = bound(sessionSeed, 1, _sessions.length + 1);
        bytes memory expected = _statusError(sessionId, ChargingLedger.Status.Opened);
        address caller =
            callerSeed % 5 == 0 ? stranger : sessionId <= _sessions.length ? _sessions[sessionId - 1].ev : stranger;
        if (expected.length == 0) {
            SessionGhost storage s = _sessions[sessionId - 1];
            uint256 allowedFrom = s.stampedAt + ledger.authTimeout() + 1;
            // Half the time the pile stays silent until the window has closed, so cancels also succeed.
            if (callerSeed % 2 == 0 && _now() < allowedFrom) vm.warp(allowedFrom + callerSeed % 600);
            if (caller != s.ev) {
                expected = abi.encodeWithSelector(ChargingLedger.NotSessionEv.selector, sessionId, caller);
            } else if (_now() < allowedFrom) {
                expected = abi.encodeWithSelector(ChargingLedger.TooEarly.selector, sessionId, allowedFrom);
            }
        }
        _expectRevert(expected);
        vm.prank(caller);
        ledger.cancel(sessionId);
        if (expected.length != 0) {
            _refused("cancel.refused");
            return;
        }
        _closeAndRefund(sessionId, ChargingLedger.Status.Cancelled);
        calls["cancel"]++;
    }

    function expire(uint256 sessionSeed, address caller) external {
        uint256 sessionId = _pickSession(sessionSeed, ChargingLedger.Status.Authorized);
        if (sessionId == 0) sessionId = bound(sessionSeed, 1, _sessions.length + 1);
        bytes memory expected = _statusError(sessionId, ChargingLedger.Status.Authorized);
        if (expected.length == 0) {
            uint256 allowedFrom = _sessions[sessionId - 1].stampedAt + ledger.settleTimeout() + 1;
            // Half the time the pile never settles and the timeout passes, so expiries also succeed.
            if (sessionSeed % 2 == 0 && _now() < allowedFrom) vm.warp(allowedFrom + sessionSeed % 3_600);
            if (_now() < allowedFrom) {
                expected = abi.encodeWithSelector(ChargingLedger.TooEarly.selector, sessionId, allowedFrom);
            }
        }
        _expectRevert(expected);
        vm.prank(caller);
        ledger.expire(sessionId);
        if (expected.length != 0) {
            _refused("expire.refused");
            return;
        }
        _closeAndRefund(sessionId, ChargingLedger.Status.Expired);
        calls["expire"]++;
    }

    /// @dev The session's EV rates its pile once; also scores out of range, strangers, second ratings and sessions
    /// not settled, each refused with its own error.
    function rate(uint256 sessionSeed, uint256 scoreSeed, uint256 faultSeed) external {
        uint8 score = uint8(bound(scoreSeed, 1, 3));
        uint256 fault = faultSeed % 8;
        if (fault == 0) {
            uint8 badScore = faultSeed % 2 == 0 ? 0 : uint8(bound(faultSeed, 4, 255));
            uint256 anySession = bound(sessionSeed, 1, _sessions.length + 1);
            _expectRevert(abi.encodeWithSelector(Evaluations.InvalidScore.selector, badScore));
            vm.prank(anySession <= _sessions.length ? _sessions[anySession - 1].ev : stranger);
            evaluations.rate(anySession, badScore);
            {
                _refused("rate.invalidScore");
                return;
            }
        }
        if (fault == 1) {
            uint256 unsettled = _pickUnsettled(sessionSeed);
            bytes memory expected = _statusError(unsettled, ChargingLedger.Status.Settled);
            _expectRevert(expected);
            vm.prank(unsettled <= _sessions.length ? _sessions[unsettled - 1].ev : stranger);
            evaluations.rate(unsettled, score);
            {
                _refused("rate.notSettled");
                return;
            }
        }
        uint256 sessionId = _settledUnrated(sessionSeed);
        address ev = _sessions[sessionId - 1].ev;
        if (fault == 2) {
            address notEv = faultSeed % 2 == 0 ? stranger : evs[(faultSeed / 2) % EV_COUNT];
            if (notEv != ev) {
                _expectRevert(abi.encodeWithSelector(Evaluations.NotSessionEv.selector, sessionId, notEv, ev));
                vm.prank(notEv);
                evaluations.rate(sessionId, score);
                {
                    _refused("rate.notSessionEv");
                    return;
                }
            }
        }
        uint256 evaluationNo = _rate(sessionId, score, ev);
        calls[
            _evaluations[evaluationNo - 1].raterCredibility <= 0
                ? "rate.weightless"
                : _evaluations[evaluationNo - 1].raterCredibility >= 6 ? "rate.cappedWeight" : "rate"
        ]++;
        if (fault == 3) {
            _expectRevert(abi.encodeWithSelector(Evaluations.AlreadyRated.selector, sessionId, evaluationNo));
            vm.prank(ev);
            evaluations.rate(sessionId, uint8(bound(faultSeed, 1, 3)));
            _refused("rate.again");
        }
    }

    // ================================================================ money actions

    function payDebt(uint256 evSeed, uint256 amountSeed) external {
        // Mostly an EV in debt when there is one (debts are rarer than EVs), else the one the seed names.
        address ev = evs[evSeed % EV_COUNT];
        for (uint256 i = 0; i < EV_COUNT && evSeed % 4 != 0 && _debtOf(ev) == 0; ++i) {
            ev = evs[(evSeed % EV_COUNT + i) % EV_COUNT];
        }
        uint256 owedWei = _debtOf(ev);
        uint256 choice = amountSeed % 6;
        uint256 amountWei = choice == 0
            ? 0
            : owedWei == 0 || choice == 1
                ? owedWei + 1 + amountSeed % 1e15
                : choice == 2 ? bound(amountSeed, 1, owedWei) : owedWei;
        bytes memory expected;
        if (amountWei == 0) {
            expected = abi.encodeWithSelector(ChargingLedger.ZeroPayment.selector);
        } else if (owedWei == 0) {
            expected = abi.encodeWithSelector(ChargingLedger.NoDebt.selector, ev);
        } else if (amountWei > owedWei) {
            expected = abi.encodeWithSelector(ChargingLedger.PaymentExceedsDebt.selector, amountWei, owedWei);
        }
        if (expected.length != 0) {
            vm.deal(ev, ev.balance + amountWei);
            _expectRevert(expected);
            vm.prank(ev);
            ledger.payDebt{value: amountWei}();
            {
                _refused("payDebt.refused");
                return;
            }
        }
        _payDebt(ev, amountWei);
        calls[amountWei == owedWei ? "payDebt.full" : "payDebt.part"]++;
    }

    function withdraw(uint256 accountSeed) external {
        address account = _account(accountSeed);
        uint256 amountWei = ghostCreditWei[account];
        if (amountWei == 0) {
            _expectRevert(abi.encodeWithSelector(ChargingLedger.NothingToWithdraw.selector, account));
            vm.prank(account);
            ledger.withdraw();
            {
                _refused("withdraw.nothing");
                return;
            }
        }
        uint256 balanceBefore = account.balance;
        vm.prank(account);
        ledger.withdraw();
        assertEq(account.balance - balanceBefore, amountWei, "withdraw pays exactly the ghost credit");
        ghostCreditWei[account] = 0;
        ghostWithdrawnWei += amountWei;
        calls["withdraw"]++;
    }

    /// @dev Mostly steps inside the authorization window, sometimes past the settle timeout.
    function warp(uint256 secondsSeed) external {
        uint256 step = secondsSeed % 4 == 0 ? bound(secondsSeed, 1, 3 days) : bound(secondsSeed, 1, 900);
        vm.warp(_now() + step);
        calls["warp"]++;
    }

    // ================================================================ end of run (not a fuzzed action)

    /**
     * @dev No deposit or credit is ever stuck: once both timeouts have passed, every opened session can be cancelled
     * by its EV and every authorized one expired by anyone, every debt paid and every credit withdrawn.
     */
    function closeEverything() external {
        vm.warp(_now() + ledger.settleTimeout() + ledger.authTimeout() + 1);
        for (uint256 sessionId = 1; sessionId <= _sessions.length; ++sessionId) {
            SessionGhost storage s = _sessions[sessionId - 1];
            if (s.status == ChargingLedger.Status.Opened) {
                vm.prank(s.ev);
                ledger.cancel(sessionId);
                _closeAndRefund(sessionId, ChargingLedger.Status.Cancelled);
            } else if (s.status == ChargingLedger.Status.Authorized) {
                vm.prank(stranger);
                ledger.expire(sessionId);
                _closeAndRefund(sessionId, ChargingLedger.Status.Expired);
            }
        }
        for (uint256 i = 0; i < EV_COUNT; ++i) {
            uint256 owedWei = _debtOf(evs[i]);
            if (owedWei > 0) _payDebt(evs[i], owedWei);
        }
        for (uint256 i = 0; i < EV_COUNT + OWNER_COUNT; ++i) {
            address account = _account(i);
            uint256 amountWei = ghostCreditWei[account];
            if (amountWei == 0) continue;
            uint256 balanceBefore = account.balance;
            vm.prank(account);
            ledger.withdraw();
            assertEq(account.balance - balanceBefore, amountWei, "the final withdrawal pays exactly the ghost credit");
            ghostCreditWei[account] = 0;
            ghostWithdrawnWei += amountWei;
        }
    }

    // ================================================================ views for the invariants

    function cpCount() external view returns (uint256) {
        return _cps.length;
    }

    function cpGhost(uint256 cpIndex) external view returns (CpGhost memory) {
        return _cps[cpIndex];
    }

    function sessionCount() external view returns (uint256) {
        return _sessions.length;
    }

    function sessionGhost(uint256 sessionId) external view returns (SessionGhost memory) {
        return _sessions[sessionId - 1];
    }

    function recordCount() external view returns (uint256) {
        return _records.length;
    }

    function recordGhost(uint256 recordNo) external view returns (ChargingRecordGhost memory) {
        return _records[recordNo - 1];
    }

    function evaluationCount() external view returns (uint256) {
        return _evaluations.length;
    }

    function evaluationGhost(uint256 evaluationNo) external view returns (EvaluationGhost memory) {
        return _evaluations[evaluationNo - 1];
    }

    function evGhost(address ev) external view returns (EvGhost memory) {
        return _evGhosts[ev];
    }

    function debtOf(address ev) external view returns (uint256) {
        return _debtOf(ev);
    }

    /// @dev Every account the ledger can owe: the EVs and the owners (relayers and strangers are never credited).
    function accounts() external view returns (address[] memory all) {
        all = new address[](EV_COUNT + OWNER_COUNT);
        for (uint256 i = 0; i < EV_COUNT; ++i) {
            all[i] = evs[i];
        }
        for (uint256 i = 0; i < OWNER_COUNT; ++i) {
            all[EV_COUNT + i] = owners[i];
        }
    }

    // ================================================================ state steps (each mirrors one successful call)

    function _attest(address who, uint8 role, uint64 validUntil) internal {
        vm.prank(authority);
        registry.attest(who, role, validUntil);
        ghostAttestedUntil[who][role] = validUntil;
    }

    function _register(address owner, Registry.CpKind kind, uint256 price) internal {
        uint256 cpIndex = _cps.length;
        bytes32 cpId = _newCpId();
        vm.prank(owner);
        registry.registerChargePoint(cpId, kind, 7, vm.addr(_signerKey(cpIndex, 0)), price, MAX_POWER_W, hex"01");
        _cps.push();
        CpGhost storage cp_ = _cps[cpIndex];
        cp_.cpId = cpId;
        cp_.owner = owner;
        cp_.active = true;
        cp_.priceWeiPerKWh = price;
    }

    function _rotate(uint256 cpIndex) internal {
        CpGhost storage cp_ = _cps[cpIndex];
        vm.prank(cp_.owner);
        registry.setSigner(cp_.cpId, vm.addr(_signerKey(cpIndex, cp_.signerVersion + 1)));
        ++cp_.signerVersion;
    }

    function _open(address ev, uint256 cpIndex, uint32 maxEnergyWh, uint256 depositWei) internal returns (uint256) {
        vm.deal(ev, ev.balance + depositWei);
        vm.prank(ev);
        uint256 sessionId = ledger.openSession{value: depositWei}(_cps[cpIndex].cpId, maxEnergyWh);
        assertEq(sessionId, _sessions.length + 1, "session ids are sequential");
        _sessions.push(
            SessionGhost({
                cpIndex: cpIndex,
                ev: ev,
                depositWei: depositWei,
                priceWeiPerKWh: _cps[cpIndex].priceWeiPerKWh,
                maxEnergyWh: maxEnergyWh,
                stampedAt: _now(),
                status: ChargingLedger.Status.Opened,
                settles: 0,
                recordNo: 0,
                evaluationNo: 0
            })
        );
        ghostHeldWei += depositWei;
        ghostDepositedWei += depositWei;
        return sessionId;
    }

    /// @dev Makes EV `evIndex` able to charge at pile `cpIndex` (re-attested, debt paid, pile active) and opens there.
    function _openPrepared(uint256 evIndex, uint256 cpIndex, uint256 depositWei) internal returns (uint256) {
        address ev = evs[evIndex % EV_COUNT];
        if (ghostAttestedUntil[ev][ROLE_EV] <= _now()) _attest(ev, ROLE_EV, uint64(_now() + 365 days));
        uint256 owedWei = _debtOf(ev);
        if (owedWei > 0) _payDebt(ev, owedWei);
        CpGhost storage cp_ = _cps[cpIndex];
        if (!cp_.active) {
            vm.prank(cp_.owner);
            registry.setActive(cp_.cpId, true);
            cp_.active = true;
        }
        uint32 maxEnergyWh = 20_000;
        if (depositWei == 0) depositWei = 0.004 ether + (_sessions.length % 7) * 0.001 ether;
        uint256 requiredWei = _costWei(2 * uint256(maxEnergyWh), cp_.priceWeiPerKWh);
        if (_evGhosts[ev].credibility < 0 && depositWei < requiredWei) depositWei = requiredWei;
        return _open(ev, cpIndex, maxEnergyWh, depositWei);
    }

    function _openEligible(uint256 seed_) internal returns (uint256) {
        return _openPrepared(seed_ % EV_COUNT, (seed_ / EV_COUNT) % _cps.length, 0);
    }

    function _openAuthorized(uint256 evIndex, uint256 cpIndex, uint256 depositWei) internal returns (uint256) {
        uint256 sessionId = _openPrepared(evIndex, cpIndex, depositWei);
        SessionGhost storage s = _sessions[sessionId - 1];
        vm.prank(vm.addr(_signerKey(cpIndex, _cps[cpIndex].signerVersion)));
        ledger.authorize(sessionId);
        s.status = ChargingLedger.Status.Authorized;
        s.stampedAt = _now();
        return sessionId;
    }

    function _settleValid(uint256 sessionId, uint256 energyWh, bool violation, address relayer)
        internal
        returns (SessionTotal memory total, bytes memory signature)
    {
        SessionGhost storage s = _sessions[sessionId - 1];
        CpGhost storage cp_ = _cps[s.cpIndex];
        total = _total(sessionId, energyWh, violation);
        signature = SessionTotalSigner.sign(ledger, _signerKey(s.cpIndex, cp_.signerVersion), total);
        vm.prank(relayer);
        SessionTotalSigner.submit(ledger, total, signature);

        uint256 costWei = _costWei(energyWh, s.priceWeiPerKWh);
        uint256 paidWei = costWei < s.depositWei ? costWei : s.depositWei;
        uint256 shortfallWei = costWei - paidWei;
        ghostCreditWei[s.ev] += s.depositWei - paidWei;
        ghostCreditWei[cp_.owner] += paidWei;
        if (shortfallWei > 0) {
            _debts[s.ev].push(DebtGhost({creditor: cp_.owner, amountWei: shortfallWei}));
            ghostDebtIncurredWei += shortfallWei;
        }
        ghostHeldWei -= s.depositWei;

        EvGhost storage evGhost_ = _evGhosts[s.ev];
        evGhost_.credibility += violation ? int256(-1) : energyWh == 0 || shortfallWei > 0 ? int256(0) : int256(1);
        uint256 recordNo = _records.length + 1;
        _records.push(
            ChargingRecordGhost({
                sessionId: sessionId,
                globalNo: ++ghostGlobalRecords,
                cpIndex: s.cpIndex,
                ev: s.ev,
                prevOfCp: cp_.lastChargingRecord,
                prevOfEv: evGhost_.lastChargingRecord
            })
        );
        cp_.lastChargingRecord = recordNo;
        ++cp_.chargingRecords;
        evGhost_.lastChargingRecord = recordNo;
        ++evGhost_.chargingRecords;
        ++evGhost_.settledSessions;
        s.status = ChargingLedger.Status.Settled;
        s.recordNo = recordNo;
        ++s.settles;
        ++ghostSettles;
    }

    function _rate(uint256 sessionId, uint8 score, address ev) internal returns (uint256 evaluationNo) {
        SessionGhost storage s = _sessions[sessionId - 1];
        CpGhost storage cp_ = _cps[s.cpIndex];
        EvGhost storage evGhost_ = _evGhosts[ev];
        vm.prank(ev);
        evaluationNo = evaluations.rate(sessionId, score);
        assertEq(evaluationNo, _evaluations.length + 1, "evaluation numbers are sequential");
        int256 before = cp_.reputation;
        int256 next = evaluations.reputationUpdate(before, score, evGhost_.credibility, _mu, _sigma);
        _evaluations.push(
            EvaluationGhost({
                globalNo: ++ghostGlobalRecords,
                chargingRecordNo: s.recordNo,
                cpIndex: s.cpIndex,
                ev: ev,
                prevOfCp: cp_.lastEvaluation,
                prevOfEv: evGhost_.lastEvaluation,
                score: score,
                raterCredibility: evGhost_.credibility,
                reputationBefore: before,
                reputationAfter: next
            })
        );
        cp_.reputation = next;
        cp_.lastEvaluation = evaluationNo;
        ++cp_.evaluations;
        evGhost_.lastEvaluation = evaluationNo;
        ++evGhost_.evaluations;
        s.evaluationNo = evaluationNo;
        ++ghostRatings;
    }

    /// @dev Oldest debt first, as the ledger pays; the list is cleared only by paying in full.
    function _payDebt(address ev, uint256 amountWei) internal {
        uint256 owedWei = _debtOf(ev);
        vm.deal(ev, ev.balance + amountWei);
        vm.prank(ev);
        ledger.payDebt{value: amountWei}();
        DebtGhost[] storage debts = _debts[ev];
        uint256 remainingWei = amountWei;
        for (uint256 i = 0; i < debts.length && remainingWei > 0; ++i) {
            uint256 partWei = debts[i].amountWei < remainingWei ? debts[i].amountWei : remainingWei;
            debts[i].amountWei -= partWei;
            remainingWei -= partWei;
            ghostCreditWei[debts[i].creditor] += partWei;
        }
        if (amountWei == owedWei) delete _debts[ev];
        ghostDebtPaidWei += amountWei;
    }

    function _closeAndRefund(uint256 sessionId, ChargingLedger.Status status) internal {
        SessionGhost storage s = _sessions[sessionId - 1];
        s.status = status;
        ghostCreditWei[s.ev] += s.depositWei;
        ghostHeldWei -= s.depositWei;
    }

    function _settleNotAuthorized(uint256 sessionSeed, uint256 energySeed) internal {
        uint256 sessionId = _pickUnsettledOrSettled(sessionSeed);
        bool known = sessionId <= _sessions.length;
        uint256 cpIndex = known ? _sessions[sessionId - 1].cpIndex : 0;
        SessionTotal memory total = _total(sessionId, energySeed % 10_000, false);
        if (!known) total.cpId = _cps[0].cpId;
        bytes memory signature =
            SessionTotalSigner.sign(ledger, _signerKey(cpIndex, _cps[cpIndex].signerVersion), total);
        bytes memory expected = known && _sessions[sessionId - 1].status == ChargingLedger.Status.Settled
            ? abi.encodeWithSelector(ChargingLedger.AlreadySettled.selector, sessionId)
            : _statusError(sessionId, ChargingLedger.Status.Authorized);
        assertTrue(expected.length != 0, "picked a session that may not settle");
        _expectRevert(expected);
        vm.prank(stranger);
        SessionTotalSigner.submit(ledger, total, signature);
        if (known && _sessions[sessionId - 1].status == ChargingLedger.Status.Settled) ++ghostReplaysRefused;
        _refused("settleForged.notAuthorized");
    }

    // ================================================================ predictions (the contracts' check order)

    function _registerError(address owner, Registry.CpKind kind, bytes32 cpId, address signer, uint256 price)
        internal
        view
        returns (bytes memory)
    {
        uint8 role = kind == Registry.CpKind.Operator ? ROLE_OPERATOR : ROLE_OWNER;
        if (ghostAttestedUntil[owner][role] <= _now()) {
            return abi.encodeWithSelector(Registry.NotAttested.selector, owner, role);
        }
        for (uint256 i = 0; i < _cps.length; ++i) {
            if (_cps[i].cpId == cpId) {
                return abi.encodeWithSelector(Registry.ChargePointAlreadyRegistered.selector, cpId);
            }
        }
        if (signer == address(0)) return abi.encodeWithSelector(Registry.ZeroSigner.selector);
        if (price == 0 || price > type(uint80).max) {
            return abi.encodeWithSelector(Registry.InvalidPrice.selector, price, uint256(type(uint80).max));
        }
        return "";
    }

    function _ownerActionError(bytes32 cpId, address owner, address caller) internal view returns (bytes memory) {
        bool known;
        for (uint256 i = 0; i < _cps.length; ++i) {
            known = known || _cps[i].cpId == cpId;
        }
        if (!known) return abi.encodeWithSelector(Registry.UnknownChargePoint.selector, cpId);
        if (caller != owner) return abi.encodeWithSelector(Registry.NotChargePointOwner.selector, cpId, caller);
        return "";
    }

    function _openError(address ev, bool unknownCp, uint256 cpIndex, uint32 maxEnergyWh, uint256 depositWei)
        internal
        view
        returns (bytes memory)
    {
        CpGhost storage cp_ = _cps[cpIndex];
        if (unknownCp) return abi.encodeWithSelector(ChargingLedger.UnknownChargePoint.selector, _newCpId());
        if (!cp_.active) return abi.encodeWithSelector(ChargingLedger.ChargePointInactive.selector, cp_.cpId);
        if (maxEnergyWh == 0) return abi.encodeWithSelector(ChargingLedger.ZeroMaxEnergy.selector);
        if (depositWei == 0) return abi.encodeWithSelector(ChargingLedger.ZeroDeposit.selector);
        if (ghostAttestedUntil[ev][ROLE_EV] <= _now()) {
            return abi.encodeWithSelector(ChargingLedger.NotAttestedEv.selector, ev);
        }
        uint256 owedWei = _debtOf(ev);
        if (owedWei > 0) return abi.encodeWithSelector(ChargingLedger.OutstandingDebt.selector, ev, owedWei);
        uint256 requiredWei = _costWei(2 * uint256(maxEnergyWh), cp_.priceWeiPerKWh);
        if (_evGhosts[ev].credibility < 0 && depositWei < requiredWei) {
            return abi.encodeWithSelector(ChargingLedger.DepositBelowRequired.selector, depositWei, requiredWei);
        }
        return "";
    }

    function _statusError(uint256 sessionId, ChargingLedger.Status expected) internal view returns (bytes memory) {
        if (sessionId == 0 || sessionId > _sessions.length) {
            return abi.encodeWithSelector(ChargingLedger.UnknownSession.selector, sessionId);
        }
        ChargingLedger.Status status = _sessions[sessionId - 1].status;
        if (status != expected) {
            return abi.encodeWithSelector(ChargingLedger.WrongSessionStatus.selector, sessionId, status, expected);
        }
        return "";
    }

    // ================================================================ internals

    function _total(uint256 sessionId, uint256 energyWh, bool violation) internal view returns (SessionTotal memory) {
        bool known = sessionId <= _sessions.length;
        return SessionTotal({
            sessionId: sessionId,
            cpId: _cps[known ? _sessions[sessionId - 1].cpIndex : 0].cpId,
            meterStartWh: METER_START_WH,
            meterStopWh: METER_START_WH + uint64(energyWh),
            startedAt: uint64(_now()),
            stoppedAt: uint64(_now()) + 3_600,
            evBehaviour: violation ? int8(-1) : int8(0)
        });
    }

    /// @dev What the ledger will recover from `signature` over `total`: the signer of another digest is not the pile.
    function _recover(ChargingLedger ledger_, SessionTotal memory total, bytes memory signature)
        internal
        view
        returns (address)
    {
        bytes32 digest = ledger_.sessionTotalDigest(
            total.sessionId,
            total.cpId,
            total.meterStartWh,
            total.meterStopWh,
            total.startedAt,
            total.stoppedAt,
            total.evBehaviour
        );
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

    function _expectRevert(bytes memory expected) internal {
        if (expected.length != 0) vm.expectRevert(expected);
    }

    function _refused(string memory path) internal {
        ++ghostRefusals;
        calls[path]++;
    }

    /// @dev A random session in `status` (scanning from a random start); 0 when there is none.
    function _pickSession(uint256 seed_, ChargingLedger.Status status) internal view returns (uint256) {
        uint256 count = _sessions.length;
        if (count == 0) return 0;
        uint256 start = seed_ % count;
        for (uint256 i = 0; i < count; ++i) {
            uint256 index = (start + i) % count;
            if (_sessions[index].status == status) return index + 1;
        }
        return 0;
    }

    /// @dev A session that is not settled (opened, authorized, cancelled, expired), or an id not yet issued.
    function _pickUnsettled(uint256 seed_) internal view returns (uint256) {
        uint256 count = _sessions.length;
        uint256 start = seed_ % (count + 1);
        for (uint256 i = 0; i <= count; ++i) {
            uint256 index = (start + i) % (count + 1);
            if (index == count || _sessions[index].status != ChargingLedger.Status.Settled) return index + 1;
        }
        return count + 1;
    }

    /// @dev Any session that is not authorized (settled ones included: their replay is refused), or an unissued id.
    function _pickUnsettledOrSettled(uint256 seed_) internal view returns (uint256) {
        uint256 count = _sessions.length;
        uint256 start = seed_ % (count + 1);
        for (uint256 i = 0; i <= count; ++i) {
            uint256 index = (start + i) % (count + 1);
            if (index == count || _sessions[index].status != ChargingLedger.Status.Authorized) return index + 1;
        }
        return count + 1;
    }

    /// @dev A settled session nobody rated yet, settling a new one when there is none.
    function _settledUnrated(uint256 seed_) internal returns (uint256) {
        uint256 count = _sessions.length;
        uint256 start = count == 0 ? 0 : seed_ % count;
        for (uint256 i = 0; i < count; ++i) {
            uint256 index = (start + i) % count;
            if (_sessions[index].status == ChargingLedger.Status.Settled && _sessions[index].evaluationNo == 0) {
                return index + 1;
            }
        }
        uint256 sessionId = _openAuthorized(seed_ % EV_COUNT, (seed_ / EV_COUNT) % _cps.length, 0);
        _settleValid(sessionId, bound(seed_, 0, 20_000), seed_ % 5 == 0, stranger);
        return sessionId;
    }

    function _debtOf(address ev) internal view returns (uint256 totalWei) {
        DebtGhost[] storage debts = _debts[ev];
        for (uint256 i = 0; i < debts.length; ++i) {
            totalWei += debts[i].amountWei;
        }
    }

    function _account(uint256 seed_) internal view returns (address) {
        uint256 index = seed_ % (EV_COUNT + OWNER_COUNT);
        return index < EV_COUNT ? evs[index] : owners[index - EV_COUNT];
    }

    function _newCpId() internal view returns (bytes32) {
        return keccak256(abi.encode("system-cp", _cps.length));
    }

    function _signerKey(uint256 cpIndex, uint256 version) internal pure returns (uint256) {
        return 0x5100_0000 + cpIndex * 0x1_0000 + version + 1;
    }

    /// @dev Read through the cheatcode: under via-IR a `block.timestamp` read may be reused across `vm.warp`.
    function _now() internal view returns (uint256) {
        return vm.getBlockTimestamp();
    }

    /// @dev ceil(energyWh × price / 1000), written independently of the ledger's formula.
    function _costWei(uint256 energyWh, uint256 priceWeiPerKWh) internal pure returns (uint256) {
        uint256 product = energyWh * priceWeiPerKWh;
        return product / 1000 + (product % 1000 == 0 ? 0 : 1);
    }
}
