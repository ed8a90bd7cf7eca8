// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ChargingLedger} from "./ChargingLedger.sol";
import {Evaluations} from "./Evaluations.sol";
import {Registry} from "./Registry.sol";

/**
 * @dev The pricing contract of the paper (§3.3 (1), Fig. 3, Algorithm 2).
 *
 * An EV that may charge invites the charge points around it to bid for a session: energy, minimum power, its
 * screening weights (price, power, distance, reputation), the round length and the most rounds it will wait, with a
 * deposit of its own. Every round is a sealed-bid commit window followed by a reveal window of `roundSeconds` each:
 * charge points commit keccak256(abi.encode(invitationId, cpId, powerW, pricePerKWh, salt)) and then reveal, so a bid
 * is public only once the round's bids are fixed, and everyone sees it before the next round ("the openness of
 * bidding encourages other CPs to provide cheaper prices"). Rounds go on while the best price improves by at least
 * `convergenceBps` of the previous best, up to the EV's round limit ("until price convergence").
 *
 * Screening (Phase 2) scores the revealed bids of the decisive round, the last round that had any, with the EV's
 * weights on four measures normalised to [0, SCORE_UNIT]: price (lowest / price), power (power / highest), distance
 * in area cells (an area id packs a grid cell as x << 32 | y; an invitation reaches its cell and the eight around it,
 * 0 cells away scores full, 2 cells away zero) and the charge point's reputation R_cp from Evaluations (0..9).
 * The EV finalizes with its decision commitment c = keccak256(abi.encode(ev, cpId, r)) (Phase 3); the ledger's
 * `openAuctionSession(invitationId, r)` reveals r, and only then opens a session with the winner at its price.
 *
 * Money: one bond per charge point per invitation, paid with its first commit; a charge point that committed in a
 * round and did not reveal forfeits it to the EV (it could otherwise commit and stay silent to see what the others
 * bid). An EV that never decides, or decides and never opens the session, loses its deposit to the bidders it kept
 * waiting. All payments are credits drawn with `withdraw()`; nothing loops over a list a bidder can grow beyond
 * `maxBidders`.
 */
contract PricingAuction {
    enum Phase {
        None,
        Bidding,
        Ended,
        Decided,
        SessionOpened,
        Failed,
        Abandoned
    }

    enum Bond {
        None,
        Held,
        Settled
    }

    uint256 public constant SCORE_UNIT = 10_000;
    uint256 public constant MAX_BIDDER_CAP = 64;
    uint8 public constant MAX_ROUNDS = 32;
    uint32 public constant MAX_ROUND_SECONDS = 1 days;
    uint256 private constant MAX_DISTANCE_CELLS = 2;
    int256 private constant MAX_REPUTATION = 9e18;
    /// @dev "No reveal yet" in `bestPriceThisRound`: written by `invite`, so no bidder pays for creating the slot.
    uint128 private constant NO_REVEAL = type(uint128).max;
    /// @dev Seven cpNos per word, and a marker bit `invite` sets in the first word for the same reason.
    uint256 private constant BIDDERS_PER_WORD = 7;
    uint256 private constant WORD_MARKER = 1 << 255;

    struct Invitation {
        // slot 0
        address ev;
        uint64 areaId;
        uint32 energyWh;
        // slot 1
        uint32 minPowerW;
        uint16 priceWeight;
        uint16 powerWeight;
        uint16 distanceWeight;
        uint16 reputationWeight;
        uint32 roundSeconds;
        uint8 maxRounds;
        /// @dev The round under way while bidding, the decisive round once it has ended.
        uint8 round;
        uint8 bidderCount;
        Phase phase;
        uint40 roundStartedAt;
        // slot 2
        uint128 bestPriceThisRound;
        uint128 bestPriceLastRound;
        // slot 3
        uint96 deposit;
        uint32 winnerCpNo;
        /// @dev When bidding ended, then when the EV decided: each decision window runs from the latest.
        uint40 stampedAt;
        uint88 compensationPerBidder;
        // slot 4
        bytes32 decisionCommitment;
    }

    struct Bid {
        // slot 0
        address bidder;
        uint8 committedRound;
        uint8 revealedRound;
        uint8 distanceCells;
        Bond bond;
        uint32 powerW;
        uint32 maxPowerW;
        // slot 1
        /// NOTE: the sealed commitment while a commit waits for its reveal (committedRound > revealedRound), the
        /// revealed price per kWh after it. A round of bidding then writes no new slot after the first.
        uint256 commitmentOrPrice;
    }

    Registry private immutable _registry;
    ChargingLedger private immutable _ledger;
    Evaluations private immutable _evaluations;
    uint256 private immutable _bidBond;
    uint256 private immutable _minDeposit;
    uint16 private immutable _convergenceBps;
    uint8 private immutable _maxBidders;
    uint32 private immutable _decisionSeconds;

    uint256 private _invitationCount;
    mapping(uint256 invitationId => Invitation) private _invitations;
    mapping(uint256 invitationId => mapping(bytes32 cpId => Bid)) private _bids;
    /// @dev The bidders' cpNos in bidding order, seven uint32 per word below WORD_MARKER.
    mapping(uint256 invitationId => mapping(uint256 word => uint256)) private _bidderWords;
    mapping(address account => uint256) private _withdrawable;

    event InvitationOpened(
        uint256 indexed invitationId,
        uint64 indexed areaId,
        address indexed ev,
        uint32 energyWh,
        uint32 minPowerW,
        uint32 roundSeconds,
        uint8 maxRounds
    );
    event BidCommitted(uint256 indexed invitationId, bytes32 indexed cpId, uint8 round);
    event BidRevealed(uint256 indexed invitationId, bytes32 indexed cpId, uint8 round, uint32 powerW, uint256 pricePerKWh);
    event RoundClosed(uint256 indexed invitationId, uint8 round, uint256 bestPricePerKWh);
    event BiddingEnded(uint256 indexed invitationId, uint8 decisiveRound, uint256 bestPricePerKWh);
    event AuctionFailed(uint256 indexed invitationId);
    event Decided(uint256 indexed invitationId, bytes32 indexed cpId, uint256 pricePerKWh, bytes32 decisionCommitment);
    event DecisionClaimed(uint256 indexed invitationId, bytes32 indexed cpId, address indexed ev);
    event AuctionAbandoned(uint256 indexed invitationId, uint256 compensation);
    event BondSettled(uint256 indexed invitationId, bytes32 indexed cpId, address indexed to, uint256 amount, bool forfeited);
    event Withdrawn(address indexed account, uint256 amount);

    error InvalidParameters();
    error EvCannotCharge(address ev);
    error ZeroEnergy();
    error ZeroWeights();
    error InvalidRoundSeconds(uint32 roundSeconds, uint32 maxRoundSeconds);
    error InvalidMaxRounds(uint8 maxRounds, uint8 maxAllowed);
    error DepositBelowMinimum(uint256 deposit, uint256 minDeposit);
    error DepositTooLarge(uint256 deposit);
    error UnknownInvitation(uint256 invitationId);
    error WrongPhase(uint256 invitationId, Phase phase, Phase expected);
    error UnknownChargePoint(bytes32 cpId);
    error NotChargePointBidder(bytes32 cpId, address caller);
    error ChargePointInactive(bytes32 cpId);
    error OutsideArea(bytes32 cpId, uint64 cpAreaId, uint64 invitationAreaId);
    error TooManyBidders(uint256 maxBidders);
    error WrongBond(uint256 sent, uint256 required);
    error CommitWindowClosed(uint256 invitationId, uint8 round, uint256 closedAt);
    error AlreadyCommitted(uint256 invitationId, bytes32 cpId, uint8 round);
    error BidDefaulted(uint256 invitationId, bytes32 cpId, uint8 unrevealedRound);
    error RevealWindowNotOpen(uint256 invitationId, uint8 round, uint256 opensAt);
    error RevealWindowClosed(uint256 invitationId, uint8 round, uint256 closedAt);
    error NothingToReveal(uint256 invitationId, bytes32 cpId, uint8 round);
    error CommitmentMismatch(uint256 invitationId, bytes32 cpId);
    error PowerBelowMinimum(uint32 powerW, uint32 minPowerW);
    error PowerAboveRegistered(uint32 powerW, uint32 maxPowerW);
    error InvalidPrice(uint256 pricePerKWh, uint256 maxPricePerKWh);
    error RoundStillOpen(uint256 invitationId, uint8 round, uint256 closesAt);
    error NotInvitationEv(uint256 invitationId, address caller);
    error DecisionWindowOpen(uint256 invitationId, uint256 closesAt);
    error NotLedger(address caller);
    error DecisionMismatch(uint256 invitationId);
    error NoBond(uint256 invitationId, bytes32 cpId);
    error BondAlreadySettled(uint256 invitationId, bytes32 cpId);
    error NothingToWithdraw(address account);
    error WithdrawFailed(address account, uint256 amount);

    constructor(
        Registry registry_,
        ChargingLedger ledger_,
        Evaluations evaluations_,
        uint256 bidBond_,
        uint256 minDeposit_,
        uint16 convergenceBps_,
        uint8 maxBidders_,
        uint32 decisionSeconds_
    ) {
        if (convergenceBps_ > 10_000 || maxBidders_ == 0 || maxBidders_ > MAX_BIDDER_CAP || decisionSeconds_ == 0) {
            revert InvalidParameters();
        }
        _registry = registry_;
        _ledger = ledger_;
        _evaluations = evaluations_;
        _bidBond = bidBond_;
        _minDeposit = minDeposit_;
        _convergenceBps = convergenceBps_;
        _maxBidders = maxBidders_;
        _decisionSeconds = decisionSeconds_;
    }

    // ================================================================ Phase 1: the auction game

    /// @notice Invites the charge points in and around `areaId` to bid; `weights` = (price, power, distance, reputation).
    function invite(
        uint64 areaId,
        uint32 energyWh,
        uint32 minPowerW,
        uint16[4] calldata weights,
        uint32 roundSeconds,
        uint8 maxRounds
    ) external payable returns (uint256 invitationId) {
        if (!_ledger.canCharge(msg.sender)) revert EvCannotCharge(msg.sender);
        if (energyWh == 0) revert ZeroEnergy();
        if (uint256(weights[0]) + weights[1] + weights[2] + weights[3] == 0) revert ZeroWeights();
        if (roundSeconds == 0 || roundSeconds > MAX_ROUND_SECONDS) {
            revert InvalidRoundSeconds(roundSeconds, MAX_ROUND_SECONDS);
        }
        if (maxRounds == 0 || maxRounds > MAX_ROUNDS) revert InvalidMaxRounds(maxRounds, MAX_ROUNDS);
        if (msg.value < _minDeposit) revert DepositBelowMinimum(msg.value, _minDeposit);
        if (msg.value > type(uint96).max) revert DepositTooLarge(msg.value);

        invitationId = ++_invitationCount;
        Invitation storage inv = _invitations[invitationId];
        inv.ev = msg.sender;
        inv.areaId = areaId;
        inv.energyWh = energyWh;
        inv.minPowerW = minPowerW;
        inv.priceWeight = weights[0];
        inv.powerWeight = weights[1];
        inv.distanceWeight = weights[2];
        inv.reputationWeight = weights[3];
        inv.roundSeconds = roundSeconds;
        inv.maxRounds = maxRounds;
        inv.round = 1;
        inv.phase = Phase.Bidding;
        inv.roundStartedAt = uint40(block.timestamp);
        inv.bestPriceThisRound = NO_REVEAL;
        inv.deposit = uint96(msg.value);
        _bidderWords[invitationId][0] = WORD_MARKER;
        emit InvitationOpened(invitationId, areaId, msg.sender, energyWh, minPowerW, roundSeconds, maxRounds);
    }

    /// @notice Commits a sealed bid for this round; the first commit of a charge point carries its bond.
    function commitBid(uint256 invitationId, bytes32 cpId, bytes32 commitment) external payable {
        Invitation storage inv = _bidding(invitationId);
        uint8 round = inv.round;
        uint256 closesAt = uint256(inv.roundStartedAt) + inv.roundSeconds;
        if (block.timestamp >= closesAt) revert CommitWindowClosed(invitationId, round, closesAt);

        Bid storage bid = _bids[invitationId][cpId];
        if (bid.bond == Bond.None) {
            _admitBidder(inv, invitationId, cpId, bid);
        } else {
            if (msg.sender != bid.bidder) revert NotChargePointBidder(cpId, msg.sender);
            if (msg.value != 0) revert WrongBond(msg.value, 0);
            if (bid.committedRound == round) revert AlreadyCommitted(invitationId, cpId, round);
            // A commit left unrevealed stays forfeited: a new commit would otherwise make the bid revealed again and
            // let a charge point stay silent in a round (after seeing the others' reveals) at no cost.
            if (bid.committedRound != bid.revealedRound) revert BidDefaulted(invitationId, cpId, bid.committedRound);
        }
        bid.committedRound = round;
        bid.commitmentOrPrice = uint256(commitment);
        emit BidCommitted(invitationId, cpId, round);
    }

    /// @notice Opens this round's sealed bid; it is public from now on.
    function revealBid(uint256 invitationId, bytes32 cpId, uint32 powerW, uint256 pricePerKWh, bytes32 salt) external {
        Invitation storage inv = _bidding(invitationId);
        uint8 round = inv.round;
        uint256 opensAt = uint256(inv.roundStartedAt) + inv.roundSeconds;
        if (block.timestamp < opensAt) revert RevealWindowNotOpen(invitationId, round, opensAt);
        uint256 closesAt = opensAt + inv.roundSeconds;
        if (block.timestamp >= closesAt) revert RevealWindowClosed(invitationId, round, closesAt);

        Bid storage bid = _bids[invitationId][cpId];
        if (bid.committedRound != round || bid.revealedRound == round) revert NothingToReveal(invitationId, cpId, round);
        bytes32 expected = keccak256(abi.encode(invitationId, cpId, powerW, pricePerKWh, salt));
        if (bytes32(bid.commitmentOrPrice) != expected) revert CommitmentMismatch(invitationId, cpId);
        if (powerW < inv.minPowerW) revert PowerBelowMinimum(powerW, inv.minPowerW);
        if (powerW > bid.maxPowerW) revert PowerAboveRegistered(powerW, bid.maxPowerW);
        // The ledger keeps a session's price in 80 bits, like the Registry's listed prices.
        if (pricePerKWh == 0 || pricePerKWh > type(uint80).max) revert InvalidPrice(pricePerKWh, type(uint80).max);

        bid.revealedRound = round;
        bid.powerW = powerW;
        bid.commitmentOrPrice = pricePerKWh;
        if (pricePerKWh < inv.bestPriceThisRound) inv.bestPriceThisRound = uint128(pricePerKWh);
        emit BidRevealed(invitationId, cpId, round, powerW, pricePerKWh);
    }

    /**
     * @notice Anyone closes a round once its reveal window is over. Bidding ends when the round had no reveal, when
     * the best price improved by less than the convergence step, or at the EV's round limit.
     */
    function closeRound(uint256 invitationId) external {
        Invitation storage inv = _bidding(invitationId);
        uint8 round = inv.round;
        uint256 closesAt = uint256(inv.roundStartedAt) + 2 * uint256(inv.roundSeconds);
        if (block.timestamp < closesAt) revert RoundStillOpen(invitationId, round, closesAt);

        uint256 best = inv.bestPriceThisRound;
        uint256 previous = inv.bestPriceLastRound;
        if (best == NO_REVEAL) {
            emit RoundClosed(invitationId, round, 0);
            // Nobody revealed: the previous round decides, if there was one.
            if (round == 1) {
                _fail(inv, invitationId);
                return;
            }
            _endBidding(inv, invitationId, round - 1, previous);
            return;
        }
        emit RoundClosed(invitationId, round, best);
        bool converged = round > 1 && (best >= previous || previous - best < (previous * _convergenceBps) / 10_000);
        if (converged || round == inv.maxRounds) {
            _endBidding(inv, invitationId, round, best);
            return;
        }
        inv.round = round + 1;
        inv.roundStartedAt = uint40(block.timestamp);
        inv.bestPriceLastRound = uint128(best);
        inv.bestPriceThisRound = NO_REVEAL;
    }

    // ================================================================ Phases 2 and 3: screening and decision

    /// @notice The bid screening would choose now (for the EV to build its decision commitment before finalizing).
    function screen(uint256 invitationId) external view returns (bytes32 cpId, uint256 pricePerKWh, uint256 score) {
        Invitation storage inv = _invitation(invitationId);
        if (inv.phase != Phase.Ended) revert WrongPhase(invitationId, inv.phase, Phase.Ended);
        (, cpId, pricePerKWh, score) = _screen(inv, invitationId);
    }

    /**
     * @notice The EV records its decision commitment c = keccak256(abi.encode(ev, cpId, r)) for the screened winner.
     * Screening reads reputations live, so a rating mined between the EV's `screen` and its `finalize` can change
     * the winner; the EV may then finalize again with a commitment for the winner `Decided` named. The winner and
     * the decision window stay as they were.
     */
    function finalize(uint256 invitationId, bytes32 decisionCommitment) external {
        Invitation storage inv = _invitation(invitationId);
        if (msg.sender != inv.ev) revert NotInvitationEv(invitationId, msg.sender);
        if (inv.phase == Phase.Decided) {
            (bytes32 winnerCpId,,) = _registry.parties(inv.winnerCpNo);
            inv.decisionCommitment = decisionCommitment;
            emit Decided(invitationId, winnerCpId, _bids[invitationId][winnerCpId].commitmentOrPrice, decisionCommitment);
            return;
        }
        if (inv.phase != Phase.Ended) revert WrongPhase(invitationId, inv.phase, Phase.Ended);
        (uint32 cpNo, bytes32 cpId, uint256 price,) = _screen(inv, invitationId);
        if (cpNo == 0) {
            // Every bid of the decisive round was followed by an unrevealed commit: nobody is left to choose.
            _fail(inv, invitationId);
            return;
        }
        inv.phase = Phase.Decided;
        inv.winnerCpNo = cpNo;
        inv.stampedAt = uint40(block.timestamp);
        inv.decisionCommitment = decisionCommitment;
        emit Decided(invitationId, cpId, price, decisionCommitment);
    }

    /**
     * @notice Called by the ledger's `openAuctionSession`: checks r against the decision commitment and hands over
     * the winner, the price and the energy. The EV's deposit is returned: it has kept its word.
     */
    function claimDecision(uint256 invitationId, address ev, bytes32 r)
        external
        returns (bytes32 cpId, uint256 pricePerKWh, uint32 energyWh)
    {
        if (msg.sender != address(_ledger)) revert NotLedger(msg.sender);
        Invitation storage inv = _invitation(invitationId);
        if (inv.phase != Phase.Decided) revert WrongPhase(invitationId, inv.phase, Phase.Decided);
        if (ev != inv.ev) revert NotInvitationEv(invitationId, ev);
        (cpId,,) = _registry.parties(inv.winnerCpNo);
        if (keccak256(abi.encode(ev, cpId, r)) != inv.decisionCommitment) revert DecisionMismatch(invitationId);

        inv.phase = Phase.SessionOpened;
        _credit(ev, inv.deposit);
        inv.deposit = 0;
        emit DecisionClaimed(invitationId, cpId, ev);
        return (cpId, _bids[invitationId][cpId].commitmentOrPrice, inv.energyWh);
    }

    /**
     * @notice Anyone ends an auction the EV left hanging for `decisionSeconds`: without a decision its deposit is
     * shared by the decisive round's bidders, after a decision without a session it goes to the winner (back to the
     * EV if the winner has gone inactive and so made the session impossible).
     */
    function abandon(uint256 invitationId) external {
        Invitation storage inv = _invitation(invitationId);
        Phase phase = inv.phase;
        if (phase != Phase.Ended && phase != Phase.Decided) revert WrongPhase(invitationId, phase, Phase.Ended);
        uint256 closesAt = uint256(inv.stampedAt) + _decisionSeconds;
        if (block.timestamp <= closesAt) revert DecisionWindowOpen(invitationId, closesAt);

        uint256 deposit = inv.deposit;
        inv.deposit = 0;
        inv.phase = Phase.Abandoned;
        if (phase == Phase.Decided) {
            (bytes32 cpId,,) = _registry.parties(inv.winnerCpNo);
            (,, bool active) = _registry.sessionTerms(cpId);
            // A winner that went inactive made the session impossible itself: the deposit goes back to the EV.
            _credit(active ? _bids[invitationId][cpId].bidder : inv.ev, deposit);
        } else {
            uint256 waiting = _countEligible(inv, invitationId);
            uint256 share = waiting == 0 ? 0 : deposit / waiting;
            inv.compensationPerBidder = uint88(share);
            // The indivisible rest (less than one wei per bidder), or all of it if nobody is eligible, stays the EV's.
            _credit(inv.ev, deposit - share * waiting);
        }
        emit AuctionAbandoned(invitationId, deposit);
    }

    // ================================================================ money

    /**
     * @notice Anyone settles a bond once the auction is decided, failed or abandoned: back to its bidder (with its
     * share of an abandoned EV's deposit), or to the EV if the charge point committed in a round and never revealed.
     */
    function refund(uint256 invitationId, bytes32 cpId) external {
        Invitation storage inv = _invitation(invitationId);
        Phase phase = inv.phase;
        if (phase == Phase.Bidding || phase == Phase.Ended) revert WrongPhase(invitationId, phase, Phase.Decided);
        Bid storage bid = _bids[invitationId][cpId];
        if (bid.bond == Bond.None) revert NoBond(invitationId, cpId);
        if (bid.bond == Bond.Settled) revert BondAlreadySettled(invitationId, cpId);

        bid.bond = Bond.Settled;
        bool forfeited = bid.committedRound > bid.revealedRound;
        address to = forfeited ? inv.ev : bid.bidder;
        uint256 amount = _bidBond;
        if (_eligible(bid, inv.round)) amount += inv.compensationPerBidder;
        _credit(to, amount);
        emit BondSettled(invitationId, cpId, to, amount, forfeited);
    }

    function withdraw() external {
        uint256 amount = _withdrawable[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _withdrawable[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert WithdrawFailed(msg.sender, amount);
    }

    // ================================================================ views

    function parameters()
        external
        view
        returns (uint256 bidBond, uint256 minDeposit, uint16 convergenceBps, uint8 maxBidders, uint32 decisionSeconds)
    {
        return (_bidBond, _minDeposit, _convergenceBps, _maxBidders, _decisionSeconds);
    }

    function invitationCount() external view returns (uint256) {
        return _invitationCount;
    }

    function invitation(uint256 invitationId)
        external
        view
        returns (
            address ev,
            uint64 areaId,
            uint32 energyWh,
            uint32 minPowerW,
            uint16[4] memory weights,
            uint32 roundSeconds,
            uint8 maxRounds,
            Phase phase,
            uint256 deposit
        )
    {
        Invitation storage inv = _invitation(invitationId);
        weights = [inv.priceWeight, inv.powerWeight, inv.distanceWeight, inv.reputationWeight];
        return (
            inv.ev,
            inv.areaId,
            inv.energyWh,
            inv.minPowerW,
            weights,
            inv.roundSeconds,
            inv.maxRounds,
            inv.phase,
            inv.deposit
        );
    }

    /**
     * @notice Where the auction stands: the round (the decisive one once bidding ended), its windows, the best
     * revealed prices of this and the previous round, the number of bidders and, once decided, the winner.
     */
    function progress(uint256 invitationId)
        external
        view
        returns (
            Phase phase,
            uint8 round,
            uint256 commitEndsAt,
            uint256 revealEndsAt,
            uint256 bestPriceThisRound,
            uint256 bestPriceLastRound,
            uint8 bidderCount,
            bytes32 winnerCpId,
            bytes32 decisionCommitment
        )
    {
        Invitation storage inv = _invitation(invitationId);
        commitEndsAt = uint256(inv.roundStartedAt) + inv.roundSeconds;
        if (inv.winnerCpNo != 0) (winnerCpId,,) = _registry.parties(inv.winnerCpNo);
        return (
            inv.phase,
            inv.round,
            commitEndsAt,
            commitEndsAt + inv.roundSeconds,
            inv.bestPriceThisRound == NO_REVEAL ? 0 : inv.bestPriceThisRound,
            inv.bestPriceLastRound,
            inv.bidderCount,
            winnerCpId,
            inv.decisionCommitment
        );
    }

    /// @notice A charge point's bid; `pricePerKWh` is 0 while its latest commit is unrevealed.
    function bidOf(uint256 invitationId, bytes32 cpId)
        external
        view
        returns (
            address bidder,
            uint8 committedRound,
            uint8 revealedRound,
            uint32 powerW,
            uint256 pricePerKWh,
            uint8 distanceCells,
            Bond bond
        )
    {
        Bid storage b = _bids[invitationId][cpId];
        bool revealed = b.revealedRound != 0 && b.revealedRound == b.committedRound;
        return (
            b.bidder,
            b.committedRound,
            b.revealedRound,
            b.powerW,
            revealed ? b.commitmentOrPrice : 0,
            b.distanceCells,
            b.bond
        );
    }

    /**
     * @notice Until when the EV may decide (bidding ended) or open the session (decided); after it anyone may
     * `abandon`. 0 in every other phase.
     */
    function decisionDeadline(uint256 invitationId) external view returns (uint256) {
        Invitation storage inv = _invitation(invitationId);
        if (inv.phase != Phase.Ended && inv.phase != Phase.Decided) return 0;
        return uint256(inv.stampedAt) + _decisionSeconds;
    }

    function withdrawable(address account) external view returns (uint256) {
        return _withdrawable[account];
    }

    /// @notice Cells between two areas (|dx| + |dy| on the x << 32 | y grid), or type(uint256).max beyond the
    /// neighbouring cells an invitation reaches.
    function cellsBetween(uint64 fromArea, uint64 toArea) public pure returns (uint256) {
        uint256 dx = _gap(fromArea >> 32, toArea >> 32);
        uint256 dy = _gap(fromArea & type(uint32).max, toArea & type(uint32).max);
        if (dx > 1 || dy > 1) return type(uint256).max;
        return dx + dy;
    }

    /// @notice The commitment a charge point seals its bid with.
    function bidCommitment(uint256 invitationId, bytes32 cpId, uint32 powerW, uint256 pricePerKWh, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(invitationId, cpId, powerW, pricePerKWh, salt));
    }

    /// @notice The decision commitment c = H(EV, CP, r) of Algorithm 2.
    function decisionCommitmentOf(address ev, bytes32 cpId, bytes32 r) external pure returns (bytes32) {
        return keccak256(abi.encode(ev, cpId, r));
    }

    // ================================================================ internals

    function _admitBidder(Invitation storage inv, uint256 invitationId, bytes32 cpId, Bid storage bid) private {
        (uint32 cpNo, uint64 cpArea, uint32 maxPowerW, bool active, bool mayBid) =
            _registry.bidTerms(cpId, msg.sender);
        if (cpNo == 0) revert UnknownChargePoint(cpId);
        if (!mayBid) revert NotChargePointBidder(cpId, msg.sender);
        if (!active) revert ChargePointInactive(cpId);
        uint256 distance = cellsBetween(cpArea, inv.areaId);
        if (distance > MAX_DISTANCE_CELLS) revert OutsideArea(cpId, cpArea, inv.areaId);
        uint8 count = inv.bidderCount;
        if (count >= _maxBidders) revert TooManyBidders(_maxBidders);
        if (msg.value != _bidBond) revert WrongBond(msg.value, _bidBond);

        inv.bidderCount = count + 1;
        _bidderWords[invitationId][count / BIDDERS_PER_WORD] |=
            WORD_MARKER | (uint256(cpNo) << (32 * (count % BIDDERS_PER_WORD)));
        bid.bidder = msg.sender;
        bid.distanceCells = uint8(distance);
        bid.bond = Bond.Held;
        bid.maxPowerW = maxPowerW;
    }

    function _endBidding(Invitation storage inv, uint256 invitationId, uint8 decisiveRound, uint256 best) private {
        inv.phase = Phase.Ended;
        inv.round = decisiveRound;
        inv.stampedAt = uint40(block.timestamp);
        emit BiddingEnded(invitationId, decisiveRound, best);
    }

    /// @dev Two passes over at most `maxBidders` bids: the best price and power of the decisive round, then scores.
    function _screen(Invitation storage inv, uint256 invitationId)
        private
        view
        returns (uint32 winnerCpNo, bytes32 winnerCpId, uint256 winnerPrice, uint256 winnerScore)
    {
        uint8 decisiveRound = inv.round;
        uint256 count = inv.bidderCount;
        uint256 lowestPrice = type(uint256).max;
        uint256 highestPower = 0;
        bytes32[] memory cpIds = new bytes32[](count);
        for (uint256 i = 0; i < count; ++i) {
            (bytes32 cpId,,) = _registry.parties(uint32(_bidderAt(invitationId, i)));
            cpIds[i] = cpId;
            Bid storage b = _bids[invitationId][cpId];
            if (!_eligible(b, decisiveRound)) continue;
            if (b.commitmentOrPrice < lowestPrice) lowestPrice = b.commitmentOrPrice;
            if (b.powerW > highestPower) highestPower = b.powerW;
        }
        if (highestPower == 0) return (0, bytes32(0), 0, 0);

        for (uint256 i = 0; i < count; ++i) {
            Bid storage b = _bids[invitationId][cpIds[i]];
            if (!_eligible(b, decisiveRound)) continue;
            uint256 price = b.commitmentOrPrice;
            uint256 score = _score(inv, cpIds[i], b, price, lowestPrice, highestPower);
            // Ties go to the lower price, then to the earlier bidder.
            if (winnerCpNo == 0 || score > winnerScore || (score == winnerScore && price < winnerPrice)) {
                winnerCpNo = uint32(_bidderAt(invitationId, i));
                winnerCpId = cpIds[i];
                winnerPrice = price;
                winnerScore = score;
            }
        }
    }

    function _score(
        Invitation storage inv,
        bytes32 cpId,
        Bid storage b,
        uint256 price,
        uint256 lowestPrice,
        uint256 highestPower
    ) private view returns (uint256) {
        uint256 priceScore = (lowestPrice * SCORE_UNIT) / price;
        uint256 powerScore = (uint256(b.powerW) * SCORE_UNIT) / highestPower;
        uint256 distanceScore = ((MAX_DISTANCE_CELLS - b.distanceCells) * SCORE_UNIT) / MAX_DISTANCE_CELLS;
        uint256 reputationScore = 0;
        if (inv.reputationWeight != 0) {
            int256 reputation = _evaluations.reputation(cpId);
            if (reputation > MAX_REPUTATION) reputation = MAX_REPUTATION;
            if (reputation > 0) reputationScore = (uint256(reputation) * SCORE_UNIT) / uint256(MAX_REPUTATION);
        }
        return inv.priceWeight * priceScore + inv.powerWeight * powerScore + inv.distanceWeight * distanceScore
            + inv.reputationWeight * reputationScore;
    }

    function _bidderAt(uint256 invitationId, uint256 index) private view returns (uint256 cpNo) {
        return (_bidderWords[invitationId][index / BIDDERS_PER_WORD] >> (32 * (index % BIDDERS_PER_WORD)))
            & type(uint32).max;
    }

    /// @dev A bid screening considers: revealed in the decisive round and not followed by an unrevealed commit.
    function _eligible(Bid storage b, uint8 decisiveRound) private view returns (bool) {
        return b.revealedRound == decisiveRound && b.committedRound == decisiveRound;
    }

    function _countEligible(Invitation storage inv, uint256 invitationId) private view returns (uint256 eligible) {
        uint256 count = inv.bidderCount;
        for (uint256 i = 0; i < count; ++i) {
            (bytes32 cpId,,) = _registry.parties(uint32(_bidderAt(invitationId, i)));
            if (_eligible(_bids[invitationId][cpId], inv.round)) ++eligible;
        }
    }

    function _fail(Invitation storage inv, uint256 invitationId) private {
        inv.phase = Phase.Failed;
        _credit(inv.ev, inv.deposit);
        inv.deposit = 0;
        emit AuctionFailed(invitationId);
    }

    function _invitation(uint256 invitationId) private view returns (Invitation storage inv) {
        inv = _invitations[invitationId];
        if (inv.phase == Phase.None) revert UnknownInvitation(invitationId);
    }

    function _bidding(uint256 invitationId) private view returns (Invitation storage inv) {
        inv = _invitation(invitationId);
        if (inv.phase != Phase.Bidding) revert WrongPhase(invitationId, inv.phase, Phase.Bidding);
    }

    function _credit(address account, uint256 amount) private {
        if (amount != 0) _withdrawable[account] += amount;
    }

    function _gap(uint64 a, uint64 b) private pure returns (uint256) {
        return a > b ? a - b : b - a;
    }
}
