// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Registry} from "../../contracts/Registry.sol";
import {ChargingLedger} from "../../contracts/ChargingLedger.sol";
import {PricingAuction} from "../../contracts/PricingAuction.sol";
import {Assertions, Test} from "./helpers/Test.sol";
import {AuctionDeployment, AuctionParameters, LedgerDeployment} from "./helpers/LedgerFixture.sol";

/**
 * @dev Drives the auction the way EVs and piles do: two EVs invite, four charge points commit, reveal (with the right
 * salt or a wrong one) and stay silent, anyone closes rounds, EVs finalize and open sessions on the ledger or walk
 * away, bonds are refunded, credits withdrawn, and time moves on. Every call either succeeds or is expected to revert
 * with the exact error the handler predicts from the views; the suite runs with fail-on-revert, so a refusal the
 * handler did not predict is a failure.
 *
 * Ghosts count money in and out and the rounds each bid was committed and revealed in, independently of the auction.
 */
contract AuctionHandler is Assertions {
    uint256 internal constant EV_COUNT = 2;
    uint256 internal constant CP_COUNT = 4;
    uint32 internal constant ROUND_S = 60;
    uint32 internal constant MIN_POWER_W = 3_700;
    uint32 internal constant MAX_POWER_W = 22_000;
    bytes32 internal constant R = keccak256("r");
    uint64 internal constant HOME = (uint64(10) << 32) | 10;
    uint64 internal constant EAST = (uint64(11) << 32) | 10;

    PricingAuction public immutable auction;
    ChargingLedger public immutable ledger;
    Registry public immutable registry;
    uint256 public immutable bidBondWei;
    uint256 public immutable minDepositWei;
    uint8 public immutable maxBidders;
    uint32 public immutable decisionSeconds;

    address[EV_COUNT] public evs;
    address public owner;
    bytes32[CP_COUNT] public cpIds;
    address[CP_COUNT] public bidders;

    struct Sealed {
        uint32 powerW;
        uint256 pricePerKWh;
        bytes32 salt;
    }

    uint256[] internal _invitations;
    mapping(uint256 invitationId => mapping(uint256 cpIndex => mapping(uint8 round => Sealed))) internal _sealed;

    // ---------------------------------------------------------------- ghosts
    uint256 public ghostPaidInWei; // deposits + bonds
    uint256 public ghostWithdrawnWei;
    mapping(uint256 invitationId => uint256) public ghostSharePerBidder; // an abandoned EV's deposit, per bidder
    mapping(uint256 invitationId => uint256) internal _stampedAt; // bidding ended, then decided
    mapping(uint256 invitationId => mapping(uint256 cpIndex => uint8)) public ghostCommittedRound;
    mapping(uint256 invitationId => mapping(uint256 cpIndex => uint8)) public ghostRevealedRound;
    /// @dev How often each path ran: assert one is 0 in a throwaway invariant to see the handler still reaches it.
    mapping(string action => uint256 count) public calls;

    constructor(PricingAuction auction_, ChargingLedger ledger_, Registry registry_) {
        auction = auction_;
        ledger = ledger_;
        registry = registry_;
        (bidBondWei, minDepositWei,, maxBidders, decisionSeconds) = auction_.parameters();
        for (uint256 i = 0; i < EV_COUNT; ++i) {
            evs[i] = vm.addr(0xE0 + i);
            vm.label(evs[i], string.concat("ev", vm.toString(i)));
        }
        owner = vm.addr(0xA0);
        for (uint256 i = 0; i < CP_COUNT; ++i) {
            cpIds[i] = keccak256(abi.encode("cp", i));
            bidders[i] = vm.addr(0x5100 + i);
            vm.label(bidders[i], string.concat("bidder", vm.toString(i)));
        }
    }

    /// @dev Called by the test (the registry's authority) once it has attested the actors; the last pile is one
    /// cell east, so screening sees two distances.
    function registerChargePoints() external {
        for (uint256 i = 0; i < CP_COUNT; ++i) {
            vm.prank(owner);
            registry.registerChargePoint(
                cpIds[i], Registry.CpKind.Private, i == CP_COUNT - 1 ? EAST : HOME, bidders[i], 3e14, MAX_POWER_W, hex"01"
            );
        }
    }

    // ================================================================ actions

    function invite(uint256 evSeed, uint256 depositSeed, uint256 maxRoundsSeed, uint256 weightsSeed) external {
        address ev = evs[evSeed % EV_COUNT];
        uint256 depositWei = bound(depositSeed, minDepositWei, minDepositWei + 0.1 ether);
        uint8 maxRounds = uint8(bound(maxRoundsSeed, 1, 4));
        uint16[4] memory weights = [
            uint16(1 + weightsSeed % 100),
            uint16((weightsSeed >> 8) % 100),
            uint16((weightsSeed >> 16) % 100),
            uint16((weightsSeed >> 24) % 100)
        ];
        vm.deal(ev, ev.balance + depositWei);
        vm.prank(ev);
        uint256 id = auction.invite{value: depositWei}(HOME, 10_000, MIN_POWER_W, weights, ROUND_S, maxRounds);
        assertEq(id, _invitations.length + 1, "invitation ids are sequential");
        _invitations.push(id);
        ghostPaidInWei += depositWei;
        calls["invite"]++;
    }

    function commit(uint256 invitationSeed, uint256 cpSeed, uint256 powerSeed, uint256 priceSeed) external {
        uint256 id = _pick(invitationSeed, PricingAuction.Phase.Bidding);
        if (id == 0) return;
        uint256 k = cpSeed % CP_COUNT;
        bytes32 cpId = cpIds[k];
        (, uint8 round, uint256 commitEndsAt,,,, uint8 bidderCount,,) = auction.progress(id);
        (, uint8 committedRound, uint8 revealedRound,,,, PricingAuction.Bond bond) = auction.bidOf(id, cpId);
        Sealed memory bid = Sealed({
            powerW: uint32(bound(powerSeed, MIN_POWER_W, MAX_POWER_W)),
            pricePerKWh: bound(priceSeed, 1e14, 5e14),
            salt: keccak256(abi.encode(id, k, round, priceSeed))
        });
        uint256 valueWei = bond == PricingAuction.Bond.None ? bidBondWei : 0;
        vm.deal(bidders[k], bidders[k].balance + valueWei);

        bool accepted;
        if (_now() >= commitEndsAt) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.CommitWindowClosed.selector, id, round, commitEndsAt));
            calls["commit.late"]++;
        } else if (bond == PricingAuction.Bond.None && bidderCount >= maxBidders) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.TooManyBidders.selector, maxBidders));
            calls["commit.full"]++;
        } else if (bond != PricingAuction.Bond.None && committedRound == round) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.AlreadyCommitted.selector, id, cpId, round));
            calls["commit.twice"]++;
        } else if (bond != PricingAuction.Bond.None && committedRound != revealedRound) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.BidDefaulted.selector, id, cpId, committedRound));
            calls["commit.defaulted"]++;
        } else {
            accepted = true;
        }
        vm.prank(bidders[k]);
        auction.commitBid{value: valueWei}(
            id, cpId, keccak256(abi.encode(id, cpId, bid.powerW, bid.pricePerKWh, bid.salt))
        );
        if (!accepted) return;
        _sealed[id][k][round] = bid;
        ghostCommittedRound[id][k] = round;
        ghostPaidInWei += valueWei;
        calls["commit"]++;
    }

    function reveal(uint256 invitationSeed, uint256 cpSeed, bool withTheRightSalt) external {
        uint256 id = _pick(invitationSeed, PricingAuction.Phase.Bidding);
        if (id == 0) return;
        (, uint8 round, uint256 opensAt, uint256 closesAt,,,,,) = auction.progress(id);
        // Mostly a bid that waits for its reveal, so reveals succeed often enough to reach the later phases.
        uint256 k = cpSeed % CP_COUNT;
        if (cpSeed % 4 != 0) {
            for (uint256 j = 0; j < CP_COUNT; ++j) {
                uint256 candidate = (k + j) % CP_COUNT;
                if (ghostCommittedRound[id][candidate] == round && ghostRevealedRound[id][candidate] != round) {
                    k = candidate;
                    break;
                }
            }
        }
        bytes32 cpId = cpIds[k];
        (, uint8 committedRound, uint8 revealedRound,,,,) = auction.bidOf(id, cpId);
        Sealed memory bid = _sealed[id][k][round];
        bytes32 salt = withTheRightSalt ? bid.salt : keccak256(abi.encode(bid.salt));

        bool accepted;
        if (_now() < opensAt) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.RevealWindowNotOpen.selector, id, round, opensAt));
            calls["reveal.early"]++;
        } else if (_now() >= closesAt) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.RevealWindowClosed.selector, id, round, closesAt));
            calls["reveal.late"]++;
        } else if (committedRound != round || revealedRound == round) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.NothingToReveal.selector, id, cpId, round));
            calls["reveal.nothing"]++;
        } else if (!withTheRightSalt) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.CommitmentMismatch.selector, id, cpId));
            calls["reveal.wrongSalt"]++;
        } else {
            accepted = true;
        }
        vm.prank(bidders[k]);
        auction.revealBid(id, cpId, bid.powerW, bid.pricePerKWh, salt);
        if (!accepted) return;
        ghostRevealedRound[id][k] = round;
        calls["reveal"]++;
    }

    /// @dev `waitForTheEnd` first moves time to the round's end: a chain of rounds needs many closes at the right time.
    function closeRound(uint256 invitationSeed, bool waitForTheEnd) external {
        uint256 id = _pick(invitationSeed, PricingAuction.Phase.Bidding);
        if (id == 0) return;
        (, uint8 round,, uint256 closesAt,,,,,) = auction.progress(id);
        if (waitForTheEnd && _now() < closesAt) vm.warp(closesAt);
        if (_now() < closesAt) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.RoundStillOpen.selector, id, round, closesAt));
            auction.closeRound(id);
            calls["closeRound.early"]++;
            return;
        }
        auction.closeRound(id);
        (PricingAuction.Phase phase,,,,,,,,) = auction.progress(id);
        if (phase == PricingAuction.Phase.Ended) _stampedAt[id] = _now();
        calls[phase == PricingAuction.Phase.Bidding ? "closeRound.next" : "closeRound.end"]++;
    }

    function finalize(uint256 invitationSeed, bool byTheEv) external {
        uint256 id = _pick(invitationSeed, PricingAuction.Phase.Ended);
        if (id == 0) return;
        (address ev,,,,,,,,) = auction.invitation(id);
        (bytes32 cpId, uint256 pricePerKWh,) = auction.screen(id);
        if (cpId != bytes32(0)) _assertEligible(id, cpId, pricePerKWh);
        bytes32 c = keccak256(abi.encode(ev, cpId, R));
        if (!byTheEv) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.NotInvitationEv.selector, id, owner));
            vm.prank(owner);
            auction.finalize(id, c);
            calls["finalize.stranger"]++;
            return;
        }
        vm.prank(ev);
        auction.finalize(id, c);
        (PricingAuction.Phase phase,,,,,,, bytes32 winnerCpId,) = auction.progress(id);
        if (cpId == bytes32(0)) {
            assertEq(uint8(phase), uint8(PricingAuction.Phase.Failed), "nobody eligible: failed");
            calls["finalize.failed"]++;
        } else {
            assertEq(winnerCpId, cpId, "finalize records what screen chose");
            _stampedAt[id] = _now();
            calls["finalize"]++;
        }
    }

    function openAuctionSession(uint256 invitationSeed, bool withTheRightR) external {
        uint256 id = _pick(invitationSeed, PricingAuction.Phase.Decided);
        if (id == 0) return;
        (address ev,,,,,,,, uint256 depositWei) = auction.invitation(id);
        uint256 creditBefore = auction.withdrawable(ev);
        vm.deal(ev, ev.balance + 0.01 ether);
        if (!withTheRightR) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.DecisionMismatch.selector, id));
            vm.prank(ev);
            ledger.openAuctionSession{value: 0.01 ether}(id, keccak256("not r"));
            calls["open.wrongR"]++;
            return;
        }
        vm.prank(ev);
        ledger.openAuctionSession{value: 0.01 ether}(id, R);
        assertEq(auction.withdrawable(ev), creditBefore + depositWei, "deposit back on open");
        calls["open"]++;
    }

    /// @dev `waitForTheWindow` first lets the EV's decision window run out, as an EV that walked away would.
    function abandon(uint256 invitationSeed, bool waitForTheWindow) external {
        uint256 id = _pick(invitationSeed, PricingAuction.Phase.Ended);
        if (id == 0) id = _pick(invitationSeed, PricingAuction.Phase.Decided);
        if (id == 0) return;
        uint256 closesAt = _stampedAt[id] + decisionSeconds;
        if (waitForTheWindow && _now() <= closesAt) vm.warp(closesAt + 1);
        if (_now() <= closesAt) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.DecisionWindowOpen.selector, id, closesAt));
            auction.abandon(id);
            calls["abandon.early"]++;
            return;
        }
        (address ev,,,,,,, PricingAuction.Phase phase, uint256 depositWei) = auction.invitation(id);
        uint256 evCreditBefore = auction.withdrawable(ev);
        auction.abandon(id);
        if (phase == PricingAuction.Phase.Ended) {
            uint256 eligible;
            for (uint256 k = 0; k < CP_COUNT; ++k) {
                if (_isEligible(id, k)) ++eligible;
            }
            uint256 share = eligible == 0 ? 0 : depositWei / eligible;
            ghostSharePerBidder[id] = share;
            assertEq(auction.withdrawable(ev) - evCreditBefore, depositWei - share * eligible, "EV keeps the rest");
            calls["abandon.undecided"]++;
        } else {
            calls["abandon.decided"]++;
        }
    }

    function refund(uint256 invitationSeed, uint256 cpSeed) external {
        uint256 id = _pickSettleable(invitationSeed);
        if (id == 0) return;
        uint256 k = cpSeed % CP_COUNT;
        bytes32 cpId = cpIds[k];
        (address bidder, uint8 committedRound, uint8 revealedRound,,,, PricingAuction.Bond bond) =
            auction.bidOf(id, cpId);
        if (bond == PricingAuction.Bond.None) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.NoBond.selector, id, cpId));
            auction.refund(id, cpId);
            calls["refund.none"]++;
            return;
        }
        if (bond == PricingAuction.Bond.Settled) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.BondAlreadySettled.selector, id, cpId));
            auction.refund(id, cpId);
            calls["refund.twice"]++;
            return;
        }
        (address ev,,,,,,,,) = auction.invitation(id);
        bool forfeited = committedRound > revealedRound;
        address to = forfeited ? ev : bidder;
        uint256 expectedWei = bidBondWei + (_isEligible(id, k) ? ghostSharePerBidder[id] : 0);
        uint256 before = auction.withdrawable(to);
        auction.refund(id, cpId);
        assertEq(auction.withdrawable(to) - before, expectedWei, "bond (+ share) to the bidder, or forfeited to the EV");
        calls[forfeited ? "refund.forfeited" : "refund"]++;
    }

    function withdraw(uint256 actorSeed) external {
        address[] memory all = accounts();
        address account = all[actorSeed % all.length];
        uint256 amountWei = auction.withdrawable(account);
        if (amountWei == 0) {
            vm.expectRevert(abi.encodeWithSelector(PricingAuction.NothingToWithdraw.selector, account));
            vm.prank(account);
            auction.withdraw();
            return;
        }
        uint256 before = account.balance;
        vm.prank(account);
        auction.withdraw();
        assertEq(account.balance - before, amountWei, "withdraw pays the credit");
        assertEq(auction.withdrawable(account), 0, "and zeroes it");
        ghostWithdrawnWei += amountWei;
        calls["withdraw"]++;
    }

    /**
     * @dev To the very second the newest round's next window opens (where off-by-one errors live), a few seconds on,
     * or now and then past the decision window, to reach `abandon`.
     */
    function warp(uint256 secondsSeed) external {
        uint256 mode = secondsSeed % 8;
        uint256 target = _now() + bound(secondsSeed >> 8, 1, ROUND_S);
        if (mode == 0) target = _now() + decisionSeconds + 1;
        uint256 id = _pick(0, PricingAuction.Phase.Bidding);
        if (mode >= 5 && id != 0) {
            (,, uint256 commitEndsAt, uint256 revealEndsAt,,,,,) = auction.progress(id);
            target = _now() < commitEndsAt ? commitEndsAt : revealEndsAt > _now() ? revealEndsAt : _now() + 1;
        }
        vm.warp(target);
        calls["warp"]++;
    }

    // ================================================================ views for the invariants

    function invitations() external view returns (uint256[] memory) {
        return _invitations;
    }

    function accounts() public view returns (address[] memory all) {
        all = new address[](EV_COUNT + CP_COUNT + 1);
        for (uint256 i = 0; i < EV_COUNT; ++i) all[i] = evs[i];
        for (uint256 i = 0; i < CP_COUNT; ++i) all[EV_COUNT + i] = bidders[i];
        all[EV_COUNT + CP_COUNT] = owner;
    }

    /// @dev Eligible as the auction defines it: revealed in the decisive round and not followed by a sealed commit.
    function _isEligible(uint256 id, uint256 k) internal view returns (bool) {
        (, uint8 round,,,,,,,) = auction.progress(id);
        return ghostCommittedRound[id][k] == round && ghostRevealedRound[id][k] == round;
    }

    function isEligible(uint256 id, uint256 k) external view returns (bool) {
        return _isEligible(id, k);
    }

    function _assertEligible(uint256 id, bytes32 cpId, uint256 pricePerKWh) internal view {
        (, uint8 round,,,,,,,) = auction.progress(id);
        (, uint8 committedRound, uint8 revealedRound,, uint256 revealedPrice,,) = auction.bidOf(id, cpId);
        assertEq(committedRound, round, "winner committed in the decisive round");
        assertEq(revealedRound, round, "and revealed it");
        assertEq(revealedPrice, pricePerKWh, "at the price screening reports");
    }

    // ================================================================ picking

    /// @dev Mostly the newest invitation in `phase`, sometimes any: old ones still get closed, refunded, abandoned.
    function _pick(uint256 seed, PricingAuction.Phase phase) internal view returns (uint256) {
        uint256 n = _invitations.length;
        if (n == 0) return 0;
        uint256 start = seed % 3 == 0 ? seed % n : n - 1;
        for (uint256 j = 0; j < n; ++j) {
            uint256 id = _invitations[(start + n - j) % n];
            (PricingAuction.Phase current,,,,,,,,) = auction.progress(id);
            if (current == phase) return id;
        }
        return 0;
    }

    function _pickSettleable(uint256 seed) internal view returns (uint256 id) {
        id = _pick(seed, PricingAuction.Phase.Decided);
        if (id == 0) id = _pick(seed, PricingAuction.Phase.SessionOpened);
        if (id == 0) id = _pick(seed, PricingAuction.Phase.Abandoned);
        if (id == 0) id = _pick(seed, PricingAuction.Phase.Failed);
    }

    /// @dev Read through the cheatcode: under via-IR a `block.timestamp` read may be reused across `vm.warp`.
    function _now() internal view returns (uint256) {
        return vm.getBlockTimestamp();
    }
}

/// forge-config: default.invariant.fail-on-revert = true
/// forge-config: default.invariant.depth = 96
contract PricingAuctionInvariantTest is Test {
    PricingAuction internal auction;
    ChargingLedger internal ledger;
    Registry internal registry;
    AuctionHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        (registry, ledger,, auction) = AuctionDeployment.deploy(
            AuctionParameters({
                bidBondWei: 0.01 ether,
                minDepositWei: 0.02 ether,
                convergenceBps: 100,
                maxBidders: 3, // fewer than the four piles, so the cap is reached
                decisionSeconds: 1 hours
            }),
            true
        );
        handler = new AuctionHandler(auction, ledger, registry);
        uint64 validUntil = uint64(1_700_000_000 + 3_650 days);
        for (uint256 i = 0; i < 2; ++i) registry.attest(handler.evs(i), LedgerDeployment.ROLE_EV, validUntil);
        registry.attest(handler.owner(), LedgerDeployment.ROLE_OWNER, validUntil);
        handler.registerChargePoints();

        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](11);
        selectors[0] = AuctionHandler.invite.selector;
        selectors[1] = AuctionHandler.commit.selector;
        selectors[2] = AuctionHandler.reveal.selector;
        selectors[3] = AuctionHandler.closeRound.selector;
        selectors[4] = AuctionHandler.finalize.selector;
        selectors[5] = AuctionHandler.openAuctionSession.selector;
        selectors[6] = AuctionHandler.abandon.selector;
        selectors[7] = AuctionHandler.refund.selector;
        selectors[8] = AuctionHandler.withdraw.selector;
        selectors[9] = AuctionHandler.warp.selector;
        selectors[10] = AuctionHandler.commit.selector; // commits twice as often: most calls need a bid to act on
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /**
     * @dev Pull payments are solvent and nothing is lost: the auction holds exactly the EVs' deposits, the bonds not
     * yet settled, the shares of abandoned deposits not yet refunded, and every credit.
     */
    function invariant_balanceEqualsWhatIsOwed() public view {
        uint256[] memory ids = handler.invitations();
        uint256 owedWei;
        for (uint256 i = 0; i < ids.length; ++i) {
            uint256 id = ids[i];
            (,,,,,,,, uint256 depositWei) = auction.invitation(id);
            owedWei += depositWei;
            for (uint256 k = 0; k < 4; ++k) {
                (,,,,,, PricingAuction.Bond bond) = auction.bidOf(id, handler.cpIds(k));
                if (bond != PricingAuction.Bond.Held) continue;
                owedWei += 0.01 ether;
                if (handler.isEligible(id, k)) owedWei += handler.ghostSharePerBidder(id);
            }
        }
        address[] memory accounts = handler.accounts();
        for (uint256 i = 0; i < accounts.length; ++i) {
            owedWei += auction.withdrawable(accounts[i]);
        }
        assertEq(address(auction).balance, owedWei, "balance == deposits + held bonds + pending shares + credits");
        assertEq(
            address(auction).balance,
            handler.ghostPaidInWei() - handler.ghostWithdrawnWei(),
            "balance == paid in - withdrawn"
        );
    }

    /// @dev The auction's record of each bid's rounds matches the handler's, and an unrevealed commit never shows a
    /// price, never wins and never counts as eligible.
    function invariant_noBidIsEligibleWithAnUnrevealedCommit() public view {
        uint256[] memory ids = handler.invitations();
        for (uint256 i = 0; i < ids.length; ++i) {
            uint256 id = ids[i];
            (PricingAuction.Phase phase, uint8 round,,,,,, bytes32 winnerCpId,) = auction.progress(id);
            for (uint256 k = 0; k < 4; ++k) {
                (, uint8 committedRound, uint8 revealedRound,, uint256 price,,) = auction.bidOf(id, handler.cpIds(k));
                assertEq(committedRound, handler.ghostCommittedRound(id, k), "committed round");
                assertEq(revealedRound, handler.ghostRevealedRound(id, k), "revealed round");
                assertEq(price != 0, committedRound != 0 && committedRound == revealedRound, "price shown iff revealed");
            }
            bytes32 chosen = winnerCpId;
            if (phase == PricingAuction.Phase.Ended) (chosen,,) = auction.screen(id);
            if (chosen == bytes32(0)) continue;
            (, uint8 winnerCommitted, uint8 winnerRevealed,,,,) = auction.bidOf(id, chosen);
            assertEq(winnerCommitted, round, "winner committed in the decisive round");
            assertEq(winnerRevealed, round, "winner revealed in the decisive round");
        }
    }
}
