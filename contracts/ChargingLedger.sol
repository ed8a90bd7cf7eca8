// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {PricingAuction} from "./PricingAuction.sol";
import {Registry} from "./Registry.sol";

/**
 * @dev The transaction contract of the paper (§3.3 (2)) and its block structure (§3.2, Fig. 2).
 *
 * An EV opens a session with a deposit; the pile's signer (or owner) authorizes it; after charging, anyone relays
 * the pile's EIP-712 signed `SessionTotal`, and the ledger pays the owner, refunds the rest to the EV (pull payments),
 * writes the charging record and scores the EV (B_vi, eq. 1). Timeouts make sure no deposit is stuck: the EV may
 * cancel a session the pile never authorized, and anyone may expire an authorized session the pile never settled.
 *
 * Every record, charging or evaluation, gets a global number (the paper's block number, one sequence across both
 * types) and a number within its type (its branch block number). Charging records point to the charge point's and
 * the EV's previous charging records; the heads of both lists live in `cpHead` and `evHead`, so a query follows
 * pointers (Algorithm 1) instead of scanning logs.
 *
 * Storage is laid out for gas: a session is two slots, its charging record one more, and each account one slot
 * (balance, debt flag, credibility and list heads together). Settlement makes no external call but the view into
 * the Registry, so there is no reentrancy path; `withdraw` changes state before it transfers.
 */
contract ChargingLedger is EIP712 {
    enum Status {
        None,
        Opened,
        Authorized,
        Settled,
        Cancelled,
        Expired
    }

    bytes32 public constant SESSION_TOTAL_TYPEHASH = keccak256(
        "SessionTotal(uint256 sessionId,bytes32 cpId,uint64 meterStartWh,uint64 meterStopWh,uint64 startedAt,uint64 stoppedAt,int8 evBehaviour)"
    );

    uint8 private constant ROLE_EV = 1;
    uint8 private constant FLAG_TOUCHED = 1;
    uint8 private constant FLAG_IN_DEBT = 2;

    struct Session {
        // slot 0
        address ev;
        /// NOTE: while the session is open or authorized this is the deposit it holds. Settlement pays the deposit
        /// out in full, and from then on the field holds the session's charging record number: a charging record
        /// then costs one new storage slot (22.1k gas) instead of two.
        uint96 depositOrRecordNo;
        // slot 1
        uint80 pricePerKWh;
        uint32 cpNo;
        uint32 maxEnergyWh;
        /// @dev Opening time until authorized, then authorization time: each timeout runs from the latest of them.
        uint40 stampedAt;
        Status status;
        int8 evScore;
        uint48 energyWh;
    }

    struct ChargingRecordLinks {
        uint64 sessionId;
        uint64 globalNo;
        uint64 prevOfCp;
        uint64 prevOfEv;
    }

    /**
     * @dev One slot per address. FLAG_TOUCHED is set on first use and never cleared, so the slot never returns to
     * zero: crediting a payment later is a 2.9k-gas update, not a 20k-gas slot creation, even right after a withdrawal.
     */
    struct Account {
        uint88 withdrawable;
        uint8 flags;
        int32 credibility;
        uint64 lastChargingRecord;
        uint64 lastEvaluation;
    }

    struct Heads {
        uint64 lastChargingRecord;
        uint64 lastEvaluation;
    }

    struct Counters {
        uint64 sessions;
        uint64 chargingRecords;
        uint64 evaluations;
        uint64 globalRecords;
    }

    struct Debt {
        address creditor;
        uint96 amount;
    }

    Registry private immutable _registry;
    uint64 private immutable _authTimeout;
    uint64 private immutable _settleTimeout;
    address private immutable _deployer;
    address private _evaluations;
    PricingAuction private _pricingAuction;

    Counters private _counters;
    mapping(uint256 sessionId => Session) private _sessions;
    mapping(uint256 recordNo => ChargingRecordLinks) private _chargingRecords;
    mapping(address account => Account) private _accounts;
    mapping(uint32 cpNo => Heads) private _cpHeads;
    mapping(address ev => Debt[]) private _debts;

    event SessionOpened(uint256 indexed sessionId, bytes32 indexed cpId, address indexed ev, uint256 deposit, uint256 pricePerKWh, uint32 maxEnergyWh);
    event SessionAuthorized(uint256 indexed sessionId, bytes32 indexed cpId);
    event SessionSettled(uint256 indexed sessionId, bytes32 indexed cpId, address indexed ev, uint64 energyWh, uint256 cost, uint256 refund, int8 evScore, uint256 recordNo);
    event SessionCancelled(uint256 indexed sessionId, bytes32 indexed cpId, address indexed ev);
    event SessionExpired(uint256 indexed sessionId, bytes32 indexed cpId, address indexed ev);
    event DebtIncurred(address indexed ev, address indexed creditor, uint256 amount);
    event DebtPaid(address indexed ev, address indexed creditor, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event EvaluationsWired(address evaluations);
    event PricingAuctionWired(address pricingAuction);
    event AuctionSessionOpened(uint256 indexed sessionId, uint256 indexed invitationId);

    error AlreadySettled(uint256 sessionId);
    error UnknownChargePoint(bytes32 cpId);
    error ChargePointInactive(bytes32 cpId);
    error NotAttestedEv(address ev);
    error OutstandingDebt(address ev, uint256 debt);
    error ZeroMaxEnergy();
    error ZeroDeposit();
    error DepositTooLarge(uint256 deposit, uint256 maxDeposit);
    error DepositBelowRequired(uint256 deposit, uint256 requiredDeposit);
    error UnknownSession(uint256 sessionId);
    error WrongSessionStatus(uint256 sessionId, Status status, Status expected);
    error NotAuthorizer(uint256 sessionId, address caller);
    error AuthorizationWindowClosed(uint256 sessionId, uint256 deadline);
    error InvalidEvBehaviour(int8 evBehaviour);
    error MeterWentBackwards(uint64 meterStartWh, uint64 meterStopWh);
    error StopBeforeStart(uint64 startedAt, uint64 stoppedAt);
    error EnergyTooLarge(uint256 energyWh, uint256 maxEnergyWh);
    error InvalidSignature(uint256 sessionId, address recovered, address expectedSigner);
    error NotSessionEv(uint256 sessionId, address caller);
    error TooEarly(uint256 sessionId, uint256 allowedFrom);
    error NothingToWithdraw(address account);
    error WithdrawFailed(address account, uint256 amount);
    error NoDebt(address ev);
    error PaymentExceedsDebt(uint256 paid, uint256 debt);
    error ZeroPayment();
    error UnknownRecord(uint256 recordNo, uint256 recordCount);
    error NotDeployer(address caller);
    error EvaluationsAlreadyWired(address evaluations);
    error NotEvaluations(address caller);
    error PricingAuctionAlreadyWired(address pricingAuction);
    error PricingAuctionNotWired();

    constructor(Registry registry_, uint64 authTimeout_, uint64 settleTimeout_) EIP712("TrustPile", "1") {
        _registry = registry_;
        _authTimeout = authTimeout_;
        _settleTimeout = settleTimeout_;
        _deployer = msg.sender;
    }

    // ================================================================ sessions

    /// @notice Opens a charging session at `cpId` at its listed price, holding `msg.value` as the deposit.
    function openSession(bytes32 cpId, uint32 maxEnergyWh) external payable returns (uint256 sessionId) {
        (uint32 cpNo, uint256 pricePerKWh, bool active) = _registry.sessionTerms(cpId);
        return _open(cpId, cpNo, pricePerKWh, active, maxEnergyWh);
    }

    /**
     * @notice Opens a session with the winner of the EV's pricing auction at the auction's price, for the energy it
     * asked for. `r` opens the decision commitment c = keccak256(abi.encode(ev, cpId, r)) the EV finalized with.
     */
    function openAuctionSession(uint256 invitationId, bytes32 r) external payable returns (uint256 sessionId) {
        PricingAuction auction = _pricingAuction;
        if (address(auction) == address(0)) revert PricingAuctionNotWired();
        (bytes32 cpId, uint256 pricePerKWh, uint32 energyWh) = auction.claimDecision(invitationId, msg.sender, r);
        (uint32 cpNo,, bool active) = _registry.sessionTerms(cpId);
        sessionId = _open(cpId, cpNo, pricePerKWh, active, energyWh);
        emit AuctionSessionOpened(sessionId, invitationId);
    }

    function _open(bytes32 cpId, uint32 cpNo, uint256 pricePerKWh, bool active, uint32 maxEnergyWh)
        private
        returns (uint256 sessionId)
    {
        if (cpNo == 0) revert UnknownChargePoint(cpId);
        if (!active) revert ChargePointInactive(cpId);
        if (maxEnergyWh == 0) revert ZeroMaxEnergy();
        if (msg.value == 0) revert ZeroDeposit();
        if (msg.value > type(uint88).max) revert DepositTooLarge(msg.value, type(uint88).max);
        if (!_registry.isAttested(msg.sender, ROLE_EV)) revert NotAttestedEv(msg.sender);

        Account storage account = _accounts[msg.sender];
        if (account.flags & FLAG_IN_DEBT != 0) revert OutstandingDebt(msg.sender, debt(msg.sender));
        if (account.credibility < 0) {
            // R_v below R_v,min: the EV may still charge, but only against twice the energy it asks for (DESIGN §4.2).
            uint256 requiredDeposit = _costOf(2 * uint256(maxEnergyWh), pricePerKWh);
            if (msg.value < requiredDeposit) revert DepositBelowRequired(msg.value, requiredDeposit);
        }

        sessionId = ++_counters.sessions;
        _sessions[sessionId] = Session({
            ev: msg.sender,
            depositOrRecordNo: uint96(msg.value),
            pricePerKWh: uint80(pricePerKWh),
            cpNo: cpNo,
            maxEnergyWh: maxEnergyWh,
            stampedAt: uint40(block.timestamp),
            status: Status.Opened,
            evScore: 0,
            energyWh: 0
        });
        emit SessionOpened(sessionId, cpId, msg.sender, msg.value, pricePerKWh, maxEnergyWh);
    }

    /// @notice The pile's signer or owner accepts the session; from now on the EV cannot cancel it.
    function authorize(uint256 sessionId) external {
        Session storage s = _sessions[sessionId];
        _expectStatus(sessionId, s.status, Status.Opened);
        uint256 deadline = uint256(s.stampedAt) + _authTimeout;
        if (block.timestamp > deadline) revert AuthorizationWindowClosed(sessionId, deadline);
        (bytes32 cpId, bool mayAuthorize) = _registry.authorizerCheck(s.cpNo, msg.sender);
        if (!mayAuthorize) revert NotAuthorizer(sessionId, msg.sender);

        s.status = Status.Authorized;
        s.stampedAt = uint40(block.timestamp);
        emit SessionAuthorized(sessionId, cpId);
    }

    /**
     * @notice Settles an authorized session with the energy total signed by the charge point's registered signer.
     * Anyone may relay it: the signature is the authority. Cost = ceil(energyWh × price / 1000); what the deposit
     * does not cover becomes the EV's debt to the owner.
     */
    function settle(
        uint256 sessionId,
        uint64 meterStartWh,
        uint64 meterStopWh,
        uint64 startedAt,
        uint64 stoppedAt,
        int8 evBehaviour,
        bytes calldata signature
    ) external {
        Session storage s = _sessions[sessionId];
        Status status = s.status;
        if (status == Status.Settled) revert AlreadySettled(sessionId);
        _expectStatus(sessionId, status, Status.Authorized);
        if (evBehaviour != 0 && evBehaviour != -1) revert InvalidEvBehaviour(evBehaviour);
        if (meterStopWh < meterStartWh) revert MeterWentBackwards(meterStartWh, meterStopWh);
        if (stoppedAt < startedAt) revert StopBeforeStart(startedAt, stoppedAt);
        uint256 energyWh = meterStopWh - meterStartWh;
        if (energyWh > type(uint48).max) revert EnergyTooLarge(energyWh, type(uint48).max);

        uint32 cpNo = s.cpNo;
        (bytes32 cpId, address owner, address signer) = _registry.parties(cpNo);
        _checkSessionTotal(sessionId, cpId, meterStartWh, meterStopWh, startedAt, stoppedAt, evBehaviour, signature, signer);

        address ev = s.ev;
        uint256 deposit = s.depositOrRecordNo;
        uint256 cost = _costOf(energyWh, s.pricePerKWh);
        uint256 paid = cost < deposit ? cost : deposit;
        uint256 refund = deposit - paid;
        uint256 shortfall = cost - paid;
        int8 evScore = _evScore(evBehaviour, energyWh, shortfall);

        Counters memory counters = _counters;
        uint64 recordNo = ++counters.chargingRecords;
        uint64 globalNo = ++counters.globalRecords;
        _counters = counters;

        Heads storage cpHeads = _cpHeads[cpNo];
        Account storage evAccount = _accounts[ev];
        _chargingRecords[recordNo] = ChargingRecordLinks({
            sessionId: uint64(sessionId),
            globalNo: globalNo,
            prevOfCp: cpHeads.lastChargingRecord,
            prevOfEv: evAccount.lastChargingRecord
        });
        cpHeads.lastChargingRecord = recordNo;

        s.depositOrRecordNo = recordNo;
        s.status = Status.Settled;
        s.evScore = evScore;
        s.energyWh = uint48(energyWh);

        evAccount.lastChargingRecord = recordNo;
        evAccount.credibility += evScore;
        evAccount.withdrawable += uint88(refund); // refund <= deposit < 2^88
        evAccount.flags |= FLAG_TOUCHED;
        if (shortfall > 0) {
            evAccount.flags |= FLAG_IN_DEBT;
            _debts[ev].push(Debt({creditor: owner, amount: SafeCast.toUint96(shortfall)}));
            emit DebtIncurred(ev, owner, shortfall);
        }
        _credit(owner, paid);

        emit SessionSettled(sessionId, cpId, ev, uint64(energyWh), cost, refund, evScore, recordNo);
    }

    /// @notice The EV takes its deposit back from a session the pile did not authorize within `authTimeout`.
    function cancel(uint256 sessionId) external {
        Session storage s = _sessions[sessionId];
        _expectStatus(sessionId, s.status, Status.Opened);
        if (msg.sender != s.ev) revert NotSessionEv(sessionId, msg.sender);
        uint256 allowedFrom = uint256(s.stampedAt) + _authTimeout + 1;
        if (block.timestamp < allowedFrom) revert TooEarly(sessionId, allowedFrom);

        s.status = Status.Cancelled;
        _credit(msg.sender, s.depositOrRecordNo);
        (bytes32 cpId,,) = _registry.parties(s.cpNo);
        emit SessionCancelled(sessionId, cpId, msg.sender);
    }

    /// @notice Anyone refunds the EV in full for an authorized session left unsettled for `settleTimeout`.
    function expire(uint256 sessionId) external {
        Session storage s = _sessions[sessionId];
        _expectStatus(sessionId, s.status, Status.Authorized);
        uint256 allowedFrom = uint256(s.stampedAt) + _settleTimeout + 1;
        if (block.timestamp < allowedFrom) revert TooEarly(sessionId, allowedFrom);

        s.status = Status.Expired;
        address ev = s.ev;
        _credit(ev, s.depositOrRecordNo);
        (bytes32 cpId,,) = _registry.parties(s.cpNo);
        emit SessionExpired(sessionId, cpId, ev);
    }

    // ================================================================ money

    function withdraw() external {
        Account storage account = _accounts[msg.sender];
        uint256 amount = account.withdrawable;
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        account.withdrawable = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert WithdrawFailed(msg.sender, amount);
    }

    /// @notice Pays the caller's debts, oldest first, to the owners they are owed to. Partial payment is allowed.
    function payDebt() external payable {
        if (msg.value == 0) revert ZeroPayment();
        Debt[] storage debts = _debts[msg.sender];
        uint256 owed = debt(msg.sender);
        if (owed == 0) revert NoDebt(msg.sender);
        if (msg.value > owed) revert PaymentExceedsDebt(msg.value, owed);

        uint256 remaining = msg.value;
        uint256 count = debts.length;
        for (uint256 i = 0; i < count && remaining > 0; ++i) {
            Debt storage entry = debts[i];
            uint256 part = entry.amount < remaining ? entry.amount : remaining;
            if (part == 0) continue;
            entry.amount -= uint96(part);
            remaining -= part;
            _credit(entry.creditor, part);
            emit DebtPaid(msg.sender, entry.creditor, part);
        }
        if (msg.value == owed) {
            delete _debts[msg.sender];
            _accounts[msg.sender].flags &= ~FLAG_IN_DEBT;
        }
    }

    // ================================================================ evaluations (wired once at deployment)

    function setEvaluations(address evaluations_) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (_evaluations != address(0)) revert EvaluationsAlreadyWired(_evaluations);
        _evaluations = evaluations_;
        emit EvaluationsWired(evaluations_);
    }

    /// @notice Wires the pricing auction whose decisions `openAuctionSession` accepts; once, by the deployer.
    function setPricingAuction(PricingAuction pricingAuction_) external {
        if (msg.sender != _deployer) revert NotDeployer(msg.sender);
        if (address(_pricingAuction) != address(0)) revert PricingAuctionAlreadyWired(address(_pricingAuction));
        _pricingAuction = pricingAuction_;
        emit PricingAuctionWired(address(pricingAuction_));
    }

    /**
     * @dev Called by Evaluations for each new evaluation of a settled session: numbers it in both sequences and
     * links it to the charge point's and the EV's previous evaluations. Evaluations enforces who rates and how often.
     */
    function recordEvaluation(uint256 sessionId)
        external
        returns (
            uint256 evaluationNo,
            uint256 globalNo,
            uint256 chargingRecordNo,
            uint256 prevEvaluationOfCp,
            uint256 prevEvaluationOfEv,
            bytes32 cpId,
            address ev,
            int256 evCredibility
        )
    {
        if (msg.sender != _evaluations) revert NotEvaluations(msg.sender);
        Session storage s = _sessions[sessionId];
        _expectStatus(sessionId, s.status, Status.Settled);
        ev = s.ev;
        chargingRecordNo = s.depositOrRecordNo;
        (cpId,,) = _registry.parties(s.cpNo);

        Counters memory counters = _counters;
        evaluationNo = ++counters.evaluations;
        globalNo = ++counters.globalRecords;
        _counters = counters;

        Heads storage cpHeads = _cpHeads[s.cpNo];
        Account storage evAccount = _accounts[ev];
        prevEvaluationOfCp = cpHeads.lastEvaluation;
        prevEvaluationOfEv = evAccount.lastEvaluation;
        cpHeads.lastEvaluation = uint64(evaluationNo);
        evAccount.lastEvaluation = uint64(evaluationNo);
        evCredibility = evAccount.credibility;
    }

    // ================================================================ views

    function authTimeout() external view returns (uint256) {
        return _authTimeout;
    }

    function settleTimeout() external view returns (uint256) {
        return _settleTimeout;
    }

    function registry() external view returns (Registry) {
        return _registry;
    }

    function evaluations() external view returns (address) {
        return _evaluations;
    }

    function pricingAuction() external view returns (address) {
        return address(_pricingAuction);
    }

    /// @notice R_v = Σ B_vi (eq. 1).
    function credibility(address ev) external view returns (int256) {
        return _accounts[ev].credibility;
    }

    function canCharge(address ev) external view returns (bool) {
        return _registry.isAttested(ev, ROLE_EV) && _accounts[ev].flags & FLAG_IN_DEBT == 0;
    }

    function withdrawable(address account) external view returns (uint256) {
        return _accounts[account].withdrawable;
    }

    function debt(address ev) public view returns (uint256 total) {
        Debt[] storage debts = _debts[ev];
        for (uint256 i = 0; i < debts.length; ++i) {
            total += debts[i].amount;
        }
    }

    function counts()
        external
        view
        returns (uint256 sessions, uint256 chargingRecords, uint256 evaluationRecords, uint256 globalRecords)
    {
        Counters memory counters = _counters;
        return (counters.sessions, counters.chargingRecords, counters.evaluations, counters.globalRecords);
    }

    /**
     * @notice A session as the pile and the EV see it. `heldDeposit` is what the ledger still holds for it (0 once
     * settled, cancelled or expired); `recordNo` is its charging record once settled.
     */
    function session(uint256 sessionId)
        external
        view
        returns (
            bytes32 cpId,
            address ev,
            Status status,
            uint256 heldDeposit,
            uint256 pricePerKWh,
            uint32 maxEnergyWh,
            uint64 stampedAt,
            uint64 energyWh,
            int8 evScore,
            uint256 recordNo
        )
    {
        Session storage s = _sessions[sessionId];
        if (s.status == Status.None) revert UnknownSession(sessionId);
        (cpId,,) = _registry.parties(s.cpNo);
        bool holding = s.status == Status.Opened || s.status == Status.Authorized;
        return (
            cpId,
            s.ev,
            s.status,
            holding ? s.depositOrRecordNo : 0,
            s.pricePerKWh,
            s.maxEnergyWh,
            s.stampedAt,
            s.energyWh,
            s.evScore,
            s.status == Status.Settled ? s.depositOrRecordNo : 0
        );
    }

    function chargingRecord(uint256 recordNo)
        external
        view
        returns (
            uint256 globalNo,
            uint256 branchNo,
            uint256 sessionId,
            bytes32 cpId,
            address ev,
            uint64 energyWh,
            uint256 cost,
            int8 evScore,
            uint256 prevOfCp,
            uint256 prevOfEv
        )
    {
        uint256 recordCount = _counters.chargingRecords;
        if (recordNo == 0 || recordNo > recordCount) revert UnknownRecord(recordNo, recordCount);
        ChargingRecordLinks memory links = _chargingRecords[recordNo];
        Session storage s = _sessions[links.sessionId];
        (cpId,,) = _registry.parties(s.cpNo);
        return (
            links.globalNo,
            recordNo,
            links.sessionId,
            cpId,
            s.ev,
            s.energyWh,
            _costOf(s.energyWh, s.pricePerKWh),
            s.evScore,
            links.prevOfCp,
            links.prevOfEv
        );
    }

    function cpHead(bytes32 cpId) external view returns (uint256 lastChargingRecord, uint256 lastEvaluation) {
        Heads memory heads = _cpHeads[_registry.cpNoOf(cpId)];
        return (heads.lastChargingRecord, heads.lastEvaluation);
    }

    function evHead(address ev) external view returns (uint256 lastChargingRecord, uint256 lastEvaluation) {
        Account memory account = _accounts[ev];
        return (account.lastChargingRecord, account.lastEvaluation);
    }

    /// @notice The EIP-712 digest the charge point signs for a session total (for off-chain signers and checks).
    function sessionTotalDigest(
        uint256 sessionId,
        bytes32 cpId,
        uint64 meterStartWh,
        uint64 meterStopWh,
        uint64 startedAt,
        uint64 stoppedAt,
        int8 evBehaviour
    ) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    SESSION_TOTAL_TYPEHASH, sessionId, cpId, meterStartWh, meterStopWh, startedAt, stoppedAt, evBehaviour
                )
            )
        );
    }

    // ================================================================ internals

    function _checkSessionTotal(
        uint256 sessionId,
        bytes32 cpId,
        uint64 meterStartWh,
        uint64 meterStopWh,
        uint64 startedAt,
        uint64 stoppedAt,
        int8 evBehaviour,
        bytes calldata signature,
        address signer
    ) private view {
        bytes32 digest =
            sessionTotalDigest(sessionId, cpId, meterStartWh, meterStopWh, startedAt, stoppedAt, evBehaviour);
        (address recovered,,) = ECDSA.tryRecoverCalldata(digest, signature);
        if (recovered != signer || recovered == address(0)) revert InvalidSignature(sessionId, recovered, signer);
    }

    /// @dev B_vi: +1 energy delivered, paid in full, nothing reported; 0 no energy or a meter-overshoot debt; −1 reported violation.
    function _evScore(int8 evBehaviour, uint256 energyWh, uint256 shortfall) private pure returns (int8) {
        if (evBehaviour == -1) return -1;
        if (energyWh == 0 || shortfall > 0) return 0;
        return 1;
    }

    /// @dev ceil(energyWh × pricePerKWh / 1000): the pile is never paid less than the energy it delivered.
    function _costOf(uint256 energyWh, uint256 pricePerKWh) private pure returns (uint256) {
        uint256 product = energyWh * pricePerKWh;
        return product == 0 ? 0 : (product - 1) / 1000 + 1;
    }

    function _credit(address account, uint256 amount) private {
        Account storage target = _accounts[account];
        target.withdrawable += SafeCast.toUint88(amount);
        target.flags |= FLAG_TOUCHED;
    }

    function _expectStatus(uint256 sessionId, Status status, Status expected) private pure {
        if (status == Status.None) revert UnknownSession(sessionId);
        if (status != expected) revert WrongSessionStatus(sessionId, status, expected);
    }
}
