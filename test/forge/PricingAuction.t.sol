// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Registry} from "../../contracts/Registry.sol";
import {ChargingLedger} from "../../contracts/ChargingLedger.sol";
import {Evaluations} from "../../contracts/Evaluations.sol";
import {PricingAuction} from "../../contracts/PricingAuction.sol";
import {Test} from "./helpers/Test.sol";
import {
    AuctionDeployment, AuctionParameters, LedgerDeployment, SessionTotal, SessionTotalSigner
} from "./helpers/LedgerFixture.sol";

/**
 * @dev Unit tests of PricingAuction (DESIGN §4.4, paper Algorithm 2) and of its binding to the ledger through
 * `openAuctionSession`: every refusal with its exact error, screening under each dominant weight, the convergence
 * rule, where bonds and deposits go on every path, and a session opened at the auction's price that settles normally.
 * Times are read back with `vm.getBlockTimestamp()` or from `progress()` (see Vm.sol on via-IR).
 */
contract PricingAuctionTest is Test {
    using SessionTotalSigner for ChargingLedger;

    uint256 internal constant START = 1_700_000_000;
    uint256 internal constant BID_BOND_WEI = 0.01 ether;
    uint256 internal constant MIN_DEPOSIT_WEI = 0.02 ether;
    uint256 internal constant DEPOSIT_WEI = 0.05 ether;
    uint16 internal constant CONVERGENCE_BPS = 100; // rounds go on while the best price drops by >= 1 %
    uint8 internal constant MAX_BIDDERS = 3;
    uint32 internal constant DECISION_S = 1 hours;
    uint32 internal constant ROUND_S = 60;
    uint32 internal constant ENERGY_WH = 7_777;
    uint32 internal constant MIN_POWER_W = 7_000;
    uint256 internal constant LISTED_PRICE = 300_000_000_000_000;
    uint256 internal constant PRICE = 300_000_000_000_000; // 0.0003 ether per kWh; 1 % of it is 3e12

    uint256 internal constant OWNER_KEY = 0xA11CE;
    uint256 internal constant EV_KEY = 0xE1;
    uint256 internal constant EV2_KEY = 0xE2;
    uint256 internal constant DEBTOR_KEY = 0xE3;
    uint256 internal constant STRANGER_KEY = 0xBAD;
    uint256 internal constant KEY_A = 0x5A;
    uint256 internal constant KEY_B = 0x5B;
    uint256 internal constant KEY_C = 0x5C;
    uint256 internal constant KEY_D = 0x5D;
    uint256 internal constant KEY_NE = 0x5E;
    uint256 internal constant KEY_FAR = 0x5F;
    uint256 internal constant KEY_OFF = 0x50;

    // Areas are grid cells x << 32 | y; an invitation from HOME reaches HOME and its eight neighbours.
    uint64 internal constant HOME = (uint64(10) << 32) | 10;
    uint64 internal constant EAST = (uint64(11) << 32) | 10; // 1 cell away
    uint64 internal constant NORTH_EAST = (uint64(11) << 32) | 11; // diagonal: 2 cells, still reached
    uint64 internal constant FAR = (uint64(12) << 32) | 10; // beyond the neighbours

    bytes32 internal constant CP_A = keccak256("cp-a"); // HOME, 22 kW
    bytes32 internal constant CP_B = keccak256("cp-b"); // HOME, 11 kW
    bytes32 internal constant CP_C = keccak256("cp-c"); // EAST, 22 kW
    bytes32 internal constant CP_D = keccak256("cp-d"); // HOME, 22 kW
    bytes32 internal constant CP_NE = keccak256("cp-ne"); // NORTH_EAST, 22 kW
    bytes32 internal constant CP_FAR = keccak256("cp-far"); // FAR, 22 kW
    bytes32 internal constant CP_OFF = keccak256("cp-off"); // HOME, 22 kW, deactivated
    bytes32 internal constant R = keccak256("the EV's secret r");

    Registry internal registry;
    ChargingLedger internal ledger;
    Evaluations internal evaluations;
    PricingAuction internal auction;
    address internal owner;
    address internal ev;
    address internal ev2;
    address internal debtor;
    address internal stranger;

    bytes32[] internal bidderCps;
    mapping(bytes32 cpId => address) internal signerOf;
    mapping(bytes32 cpId => uint256) internal keyOf;
    uint64 internal meterWh = 1_000_000;

    function setUp() public {
        vm.warp(START);
        (registry, ledger, evaluations, auction) = AuctionDeployment.deploy(_parameters(), true);
        owner = vm.addr(OWNER_KEY);
        ev = vm.addr(EV_KEY);
        ev2 = vm.addr(EV2_KEY);
        debtor = vm.addr(DEBTOR_KEY);
        stranger = vm.addr(STRANGER_KEY);
        vm.label(owner, "owner");
        vm.label(ev, "ev");
        vm.label(ev2, "ev2");
        vm.label(debtor, "debtor");
        vm.label(stranger, "stranger");
        vm.label(address(auction), "auction");
        vm.label(address(ledger), "ledger");

        uint64 validUntil = uint64(START + 365 days);
        registry.attest(owner, LedgerDeployment.ROLE_OWNER, validUntil);
        registry.attest(ev, LedgerDeployment.ROLE_EV, validUntil);
        registry.attest(ev2, LedgerDeployment.ROLE_EV, validUntil);
        registry.attest(debtor, LedgerDeployment.ROLE_EV, validUntil);
        _register(CP_A, HOME, KEY_A, 22_000, "signerA");
        _register(CP_B, HOME, KEY_B, 11_000, "signerB");
        _register(CP_C, EAST, KEY_C, 22_000, "signerC");
        _register(CP_D, HOME, KEY_D, 22_000, "signerD");
        _register(CP_NE, NORTH_EAST, KEY_NE, 22_000, "signerNE");
        _register(CP_FAR, FAR, KEY_FAR, 22_000, "signerFar");
        _register(CP_OFF, HOME, KEY_OFF, 22_000, "signerOff");
        vm.prank(owner);
        registry.setActive(CP_OFF, false);
        bidderCps = [CP_A, CP_B, CP_C, CP_D, CP_NE];

        vm.deal(ev, 100 ether);
        vm.deal(ev2, 100 ether);
        vm.deal(debtor, 100 ether);
        vm.deal(stranger, 100 ether);
    }

    // ================================================================ refusals: invite

    function test_invite_refusesAnEvThatCannotCharge() public {
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.EvCannotCharge.selector, stranger));
        vm.prank(stranger);
        auction.invite{value: DEPOSIT_WEI}(HOME, ENERGY_WH, MIN_POWER_W, _weights(1, 0, 0, 0), ROUND_S, 3);

        _putInDebt(debtor);
        assertEq(ledger.canCharge(debtor), false, "debtor cannot charge");
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.EvCannotCharge.selector, debtor));
        vm.prank(debtor);
        auction.invite{value: DEPOSIT_WEI}(HOME, ENERGY_WH, MIN_POWER_W, _weights(1, 0, 0, 0), ROUND_S, 3);
    }

    function test_invite_refusesEachBadParameter() public {
        uint16[4] memory w = _weights(1, 0, 0, 0);
        vm.startPrank(ev);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.ZeroEnergy.selector));
        auction.invite{value: DEPOSIT_WEI}(HOME, 0, MIN_POWER_W, w, ROUND_S, 3);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.ZeroWeights.selector));
        auction.invite{value: DEPOSIT_WEI}(HOME, ENERGY_WH, MIN_POWER_W, _weights(0, 0, 0, 0), ROUND_S, 3);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.InvalidRoundSeconds.selector, 0, 1 days));
        auction.invite{value: DEPOSIT_WEI}(HOME, ENERGY_WH, MIN_POWER_W, w, 0, 3);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.InvalidRoundSeconds.selector, 1 days + 1, 1 days));
        auction.invite{value: DEPOSIT_WEI}(HOME, ENERGY_WH, MIN_POWER_W, w, 1 days + 1, 3);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.InvalidMaxRounds.selector, 0, 32));
        auction.invite{value: DEPOSIT_WEI}(HOME, ENERGY_WH, MIN_POWER_W, w, ROUND_S, 0);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.InvalidMaxRounds.selector, 33, 32));
        auction.invite{value: DEPOSIT_WEI}(HOME, ENERGY_WH, MIN_POWER_W, w, ROUND_S, 33);
        vm.expectRevert(
            abi.encodeWithSelector(PricingAuction.DepositBelowMinimum.selector, MIN_DEPOSIT_WEI - 1, MIN_DEPOSIT_WEI)
        );
        auction.invite{value: MIN_DEPOSIT_WEI - 1}(HOME, ENERGY_WH, MIN_POWER_W, w, ROUND_S, 3);
        uint256 tooMuch = uint256(type(uint96).max) + 1;
        vm.deal(ev, tooMuch);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.DepositTooLarge.selector, tooMuch));
        auction.invite{value: tooMuch}(HOME, ENERGY_WH, MIN_POWER_W, w, ROUND_S, 3);

        // The limits themselves are accepted.
        uint256 id = auction.invite{value: MIN_DEPOSIT_WEI}(HOME, 1, 0, w, 1 days, 32);
        vm.stopPrank();
        assertEq(id, 1, "first invitation id");
        assertEq(auction.invitationCount(), 1, "one invitation");
    }

    function test_invite_recordsTheInvitationAndHoldsTheDeposit() public {
        vm.expectEmit(address(auction));
        emit PricingAuction.InvitationOpened(1, HOME, ev, ENERGY_WH, MIN_POWER_W, ROUND_S, 4);
        uint256 id = _invite(_weights(5, 6, 7, 8), 4);

        (
            address invEv,
            uint64 areaId,
            uint32 energyWh,
            uint32 minPowerW,
            uint16[4] memory weights,
            uint32 roundSeconds,
            uint8 maxRounds,
            PricingAuction.Phase phase,
            uint256 deposit
        ) = auction.invitation(id);
        assertEq(invEv, ev, "ev");
        assertEq(areaId, HOME, "area");
        assertEq(energyWh, ENERGY_WH, "energy");
        assertEq(minPowerW, MIN_POWER_W, "min power");
        assertEq(uint256(weights[0]) * 1000 + weights[1] * 100 + weights[2] * 10 + weights[3], 5678, "weights");
        assertEq(roundSeconds, ROUND_S, "round seconds");
        assertEq(maxRounds, 4, "max rounds");
        assertEq(uint8(phase), uint8(PricingAuction.Phase.Bidding), "bidding");
        assertEq(deposit, DEPOSIT_WEI, "deposit");
        assertEq(address(auction).balance, DEPOSIT_WEI, "deposit held");
        (, uint8 round, uint256 commitEndsAt, uint256 revealEndsAt,,,,,) = auction.progress(id);
        assertEq(round, 1, "round 1");
        assertEq(commitEndsAt, START + ROUND_S, "commit window");
        assertEq(revealEndsAt, START + 2 * ROUND_S, "reveal window");
    }

    // ================================================================ refusals: commit

    function test_commit_refusesUnknownForeignInactiveAndFarChargePoints() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        bytes32 unknown = keccak256("cp-unknown");
        bytes32 c = keccak256("sealed");

        vm.expectRevert(abi.encodeWithSelector(PricingAuction.UnknownChargePoint.selector, unknown));
        vm.prank(stranger);
        auction.commitBid{value: BID_BOND_WEI}(id, unknown, c);

        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NotChargePointBidder.selector, CP_A, stranger));
        vm.prank(stranger);
        auction.commitBid{value: BID_BOND_WEI}(id, CP_A, c);

        _fund(CP_OFF);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.ChargePointInactive.selector, CP_OFF));
        vm.prank(signerOf[CP_OFF]);
        auction.commitBid{value: BID_BOND_WEI}(id, CP_OFF, c);

        _fund(CP_FAR);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.OutsideArea.selector, CP_FAR, FAR, HOME));
        vm.prank(signerOf[CP_FAR]);
        auction.commitBid{value: BID_BOND_WEI}(id, CP_FAR, c);

        (,,,,,, uint8 bidderCount,,) = auction.progress(id);
        assertEq(bidderCount, 0, "nobody admitted");
    }

    function test_commit_reachesTheCellAndItsEightNeighbours() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_C, 22_000, PRICE);
        _commit(id, CP_NE, 22_000, PRICE);
        assertEq(_distanceOf(id, CP_A), 0, "same cell");
        assertEq(_distanceOf(id, CP_C), 1, "side neighbour");
        assertEq(_distanceOf(id, CP_NE), 2, "diagonal neighbour");

        assertEq(auction.cellsBetween(HOME, (uint64(9) << 32) | 9), 2, "south-west diagonal");
        assertEq(auction.cellsBetween(HOME, (uint64(10) << 32) | 8), type(uint256).max, "two rows away");
        // y must not carry into x: (0, 2^32 - 1) and (1, 0) are far apart although their packed ids are adjacent.
        assertEq(
            auction.cellsBetween(uint64(type(uint32).max), uint64(1) << 32), type(uint256).max, "no carry from y to x"
        );
    }

    function test_commit_refusesAWrongBond() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        bytes32 c = keccak256("sealed");
        vm.deal(signerOf[CP_A], 1 ether);
        vm.startPrank(signerOf[CP_A]);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.WrongBond.selector, 0, BID_BOND_WEI));
        auction.commitBid(id, CP_A, c);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.WrongBond.selector, BID_BOND_WEI + 1, BID_BOND_WEI));
        auction.commitBid{value: BID_BOND_WEI + 1}(id, CP_A, c);
        vm.stopPrank();

        // Later commits carry no bond: the first one paid it for the whole invitation.
        _commit(id, CP_A, 22_000, PRICE);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _close(id);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.WrongBond.selector, 1, 0));
        vm.prank(signerOf[CP_A]);
        auction.commitBid{value: 1}(id, CP_A, c);
    }

    function test_commit_refusesASecondCommitInTheSameRound() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, 22_000, PRICE);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.AlreadyCommitted.selector, id, CP_A, 1));
        vm.prank(signerOf[CP_A]);
        auction.commitBid(id, CP_A, keccak256("another"));
    }

    function test_commit_theFirstCommitterStaysTheChargePointsBidder() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, 22_000, PRICE);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _close(id);
        // The owner may bid for its charge point, but the bond (and its refund) belongs to the signer who paid it.
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NotChargePointBidder.selector, CP_A, owner));
        vm.prank(owner);
        auction.commitBid(id, CP_A, keccak256("sealed"));
    }

    function test_commit_ownerMayBidForItsChargePoint() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        vm.deal(owner, BID_BOND_WEI);
        vm.prank(owner);
        auction.commitBid{value: BID_BOND_WEI}(id, CP_A, keccak256("sealed"));
        (address bidder,,,,,,) = auction.bidOf(id, CP_A);
        assertEq(bidder, owner, "owner is the bidder");
    }

    function test_commit_refusesTheBidderBeyondTheCap() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE);
        _commit(id, CP_C, 22_000, PRICE);
        _fund(CP_D);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.TooManyBidders.selector, MAX_BIDDERS));
        vm.prank(signerOf[CP_D]);
        auction.commitBid{value: BID_BOND_WEI}(id, CP_D, keccak256("sealed"));
    }

    function test_commit_refusedOnceTheCommitWindowCloses() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        (,, uint256 commitEndsAt,,,,,,) = auction.progress(id);
        vm.warp(commitEndsAt - 1);
        _commit(id, CP_A, 22_000, PRICE); // last second of the window
        vm.warp(commitEndsAt);
        _fund(CP_B);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.CommitWindowClosed.selector, id, 1, commitEndsAt));
        vm.prank(signerOf[CP_B]);
        auction.commitBid{value: BID_BOND_WEI}(id, CP_B, keccak256("sealed"));
    }

    /// @dev The bug this guards: a charge point could commit, stay silent after seeing the others' reveals, and win
    /// its bond back by revealing in the next round.
    function test_commit_refusedAfterLeavingACommitUnrevealed() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _close(id);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.BidDefaulted.selector, id, CP_B, 1));
        vm.prank(signerOf[CP_B]);
        auction.commitBid(id, CP_B, keccak256("sealed"));
    }

    // ================================================================ refusals: reveal and close

    function test_reveal_refusedBeforeAndAfterItsWindow() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE);
        (,, uint256 opensAt, uint256 closesAt,,,,,) = auction.progress(id);

        bytes32 salt = _salt(id, CP_A, 1);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.RevealWindowNotOpen.selector, id, 1, opensAt));
        vm.prank(signerOf[CP_A]);
        auction.revealBid(id, CP_A, 22_000, PRICE, salt);

        vm.warp(opensAt);
        _reveal(id, CP_A, 22_000, PRICE); // first second of the window
        vm.warp(closesAt);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.RevealWindowClosed.selector, id, 1, closesAt));
        vm.prank(signerOf[CP_B]);
        auction.revealBid(id, CP_B, 11_000, PRICE, _salt(id, CP_B, 1));
    }

    function test_reveal_refusesAWrongOpening() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, 22_000, PRICE);
        _revealPhase(id);
        vm.startPrank(signerOf[CP_A]);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.CommitmentMismatch.selector, id, CP_A));
        auction.revealBid(id, CP_A, 22_000, PRICE, keccak256("wrong salt"));
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.CommitmentMismatch.selector, id, CP_A));
        auction.revealBid(id, CP_A, 22_000, PRICE - 1, _salt(id, CP_A, 1));
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.CommitmentMismatch.selector, id, CP_A));
        auction.revealBid(id, CP_A, 21_999, PRICE, _salt(id, CP_A, 1));
        vm.stopPrank();
        (,,,, uint256 price,,) = auction.bidOf(id, CP_A);
        assertEq(price, 0, "still sealed");
    }

    function test_reveal_refusesBidsOutsideTheInvitationsTerms() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, MIN_POWER_W - 1, PRICE);
        _commit(id, CP_B, 11_001, PRICE); // CP_B is registered with 11 kW
        _commit(id, CP_C, 22_000, 0);
        _revealPhase(id);

        vm.expectRevert(abi.encodeWithSelector(PricingAuction.PowerBelowMinimum.selector, MIN_POWER_W - 1, MIN_POWER_W));
        vm.prank(signerOf[CP_A]);
        auction.revealBid(id, CP_A, MIN_POWER_W - 1, PRICE, _salt(id, CP_A, 1));
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.PowerAboveRegistered.selector, 11_001, 11_000));
        vm.prank(signerOf[CP_B]);
        auction.revealBid(id, CP_B, 11_001, PRICE, _salt(id, CP_B, 1));
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.InvalidPrice.selector, 0, type(uint80).max));
        vm.prank(signerOf[CP_C]);
        auction.revealBid(id, CP_C, 22_000, 0, _salt(id, CP_C, 1));
    }

    function test_reveal_refusesWithoutACommitOrTwice() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        _commit(id, CP_A, 22_000, PRICE);
        _revealPhase(id);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NothingToReveal.selector, id, CP_B, 1));
        vm.prank(signerOf[CP_B]);
        auction.revealBid(id, CP_B, 11_000, PRICE, _salt(id, CP_B, 1));
        _reveal(id, CP_A, 22_000, PRICE);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NothingToReveal.selector, id, CP_A, 1));
        vm.prank(signerOf[CP_A]);
        auction.revealBid(id, CP_A, 22_000, PRICE, _salt(id, CP_A, 1));
    }

    function test_closeRound_refusedWhileTheRevealWindowIsOpen() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 3);
        (,,, uint256 closesAt,,,,,) = auction.progress(id);
        vm.warp(closesAt - 1);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.RoundStillOpen.selector, id, 1, closesAt));
        auction.closeRound(id);
    }

    function test_unknownInvitationIsRefusedEverywhere() public {
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.UnknownInvitation.selector, 7));
        auction.closeRound(7);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.UnknownInvitation.selector, 7));
        vm.prank(signerOf[CP_A]);
        auction.commitBid(7, CP_A, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.UnknownInvitation.selector, 7));
        vm.prank(ev);
        auction.finalize(7, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.UnknownInvitation.selector, 7));
        auction.refund(7, CP_A);
    }

    // ================================================================ refusals: finalize and refund

    function test_finalize_onlyByTheEvOnceBiddingEnded() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _commit(id, CP_A, 22_000, PRICE);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        bytes32 c = auction.decisionCommitmentOf(ev, CP_A, R);

        vm.expectRevert(
            abi.encodeWithSelector(
                PricingAuction.WrongPhase.selector, id, PricingAuction.Phase.Bidding, PricingAuction.Phase.Ended
            )
        );
        vm.prank(ev);
        auction.finalize(id, c);

        _close(id);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NotInvitationEv.selector, id, stranger));
        vm.prank(stranger);
        auction.finalize(id, c);

        vm.prank(ev);
        auction.finalize(id, c);
        (,,,,,,, bytes32 winner, bytes32 recorded) = auction.progress(id);
        assertEq(winner, CP_A, "the screened winner");
        assertEq(recorded, c, "the first commitment");

        // Finalizing again only replaces the commitment (the EV's way out of a screening race); the winner stays.
        bytes32 replacement = auction.decisionCommitmentOf(ev, CP_A, bytes32(uint256(R) + 1));
        vm.expectEmit(address(auction));
        emit PricingAuction.Decided(id, CP_A, PRICE, replacement);
        vm.prank(ev);
        auction.finalize(id, replacement);
        (,,,,,,, winner, recorded) = auction.progress(id);
        assertEq(winner, CP_A, "the winner is unchanged");
        assertEq(recorded, replacement, "the replaced commitment");
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NotInvitationEv.selector, id, stranger));
        vm.prank(stranger);
        auction.finalize(id, c);
    }

    function test_refund_onlyAfterTheDecisionAndOnce() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _commit(id, CP_A, 22_000, PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(
                PricingAuction.WrongPhase.selector, id, PricingAuction.Phase.Bidding, PricingAuction.Phase.Decided
            )
        );
        auction.refund(id, CP_A);

        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _close(id);
        vm.expectRevert(
            abi.encodeWithSelector(
                PricingAuction.WrongPhase.selector, id, PricingAuction.Phase.Ended, PricingAuction.Phase.Decided
            )
        );
        auction.refund(id, CP_A);

        _finalize(id, CP_A);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NoBond.selector, id, CP_B));
        auction.refund(id, CP_B);
        auction.refund(id, CP_A);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.BondAlreadySettled.selector, id, CP_A));
        auction.refund(id, CP_A);
        assertEq(auction.withdrawable(signerOf[CP_A]), BID_BOND_WEI, "refunded once");
    }

    function test_withdraw_refusesAnEmptyAccount() public {
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NothingToWithdraw.selector, stranger));
        vm.prank(stranger);
        auction.withdraw();
    }

    // ================================================================ screening (Phase 2)

    function test_screening_priceWeightPicksTheLowestPrice() public {
        uint16[4] memory w = _weights(100, 1, 1, 1);
        uint256 id = _invite(w, 1);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE - 3e13);
        _commit(id, CP_C, 22_000, PRICE + 3e13);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_B, 11_000, PRICE - 3e13);
        _reveal(id, CP_C, 22_000, PRICE + 3e13);
        _close(id);

        // CP_B is 10 % cheaper with half the power: 100 × 10_000 + 5_000 + 10_000 (same cell) against CP_A's
        // 100 × 9_000 + 10_000 + 10_000.
        _assertScreenedAndDecided(id, CP_B, PRICE - 3e13, 100 * 10_000 + 5_000 + 10_000);
    }

    function test_screening_reputationWeightPicksTheReputedChargePoint() public {
        _earnReputation(CP_B);
        int256 reputationB = evaluations.reputation(CP_B);
        assertGt(uint256(reputationB), 0, "CP_B has a reputation");
        assertEq(evaluations.reputation(CP_A), 0, "CP_A has none");

        uint16[4] memory w = _weights(1, 0, 0, 100);
        uint256 id = _invite(w, 1);
        uint256 priceB = PRICE * 2;
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, priceB);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_B, 11_000, priceB);
        _close(id);

        // Twice the price costs CP_B 5_000 price points; its reputation is worth more at weight 100.
        uint256 reputationScore = uint256(reputationB) * 10_000 / 9e18;
        assertGt(100 * reputationScore, 5_000, "reputation outweighs the price gap");
        _assertScreenedAndDecided(id, CP_B, priceB, 1 * 5_000 + 100 * reputationScore);
    }

    function test_screening_reputationIgnoredWithoutItsWeight() public {
        _earnReputation(CP_B);
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE * 2);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_B, 11_000, PRICE * 2);
        _close(id);
        _assertScreenedAndDecided(id, CP_A, PRICE, 10_000);
    }

    function test_screening_powerWeightPrefersTheHigherPower() public {
        uint256 priceA = PRICE + 3e13; // 10 % dearer
        uint256 id = _invite(_weights(1, 10, 0, 0), 1);
        _commit(id, CP_A, 22_000, priceA);
        _commit(id, CP_B, 11_000, PRICE);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, priceA);
        _reveal(id, CP_B, 11_000, PRICE);
        _close(id);
        // CP_A: PRICE/priceA of the price points (9_090) + 10 × full power; CP_B: 10_000 + 10 × 5_000.
        _assertScreenedAndDecided(id, CP_A, priceA, PRICE * 10_000 / priceA + 10 * 10_000);
    }

    function test_screening_distanceWeightPrefersTheSameCell() public {
        uint256 priceA = PRICE + 3e13;
        uint256 id = _invite(_weights(1, 0, 10, 0), 1);
        _commit(id, CP_A, 22_000, priceA);
        _commit(id, CP_C, 22_000, PRICE); // one cell east
        _commit(id, CP_NE, 22_000, PRICE - 3e13); // diagonal: distance score 0
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, priceA);
        _reveal(id, CP_C, 22_000, PRICE);
        _reveal(id, CP_NE, 22_000, PRICE - 3e13);
        _close(id);
        uint256 lowest = PRICE - 3e13;
        uint256 scoreC = lowest * 10_000 / PRICE + 10 * 5_000;
        uint256 scoreA = lowest * 10_000 / priceA + 10 * 10_000;
        assertGt(scoreA, scoreC, "same cell beats the neighbour");
        _assertScreenedAndDecided(id, CP_A, priceA, scoreA);
    }

    function test_screening_equalScoresGoToTheLowerPrice() public {
        // Price weight 0: both score the same on power and distance, the lower price wins the tie.
        uint256 id = _invite(_weights(0, 1, 1, 0), 1);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_D, 22_000, PRICE - 1);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_D, 22_000, PRICE - 1);
        _close(id);
        _assertScreenedAndDecided(id, CP_D, PRICE - 1, 20_000);
    }

    // ================================================================ convergence (rounds)

    function test_rounds_continueWhileTheBestPriceDropsByTheStepAndEndWhenItStops() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 5);
        uint256 round2Best = PRICE - PRICE / 100; // exactly 1 %: goes on
        uint256 round3Best = round2Best - round2Best / 100 + 1; // 1 wei short of 1 %: ends

        _soloRound(id, CP_A, PRICE);
        _assertRound(id, PricingAuction.Phase.Bidding, 2, PRICE);

        _soloRound(id, CP_A, round2Best);
        _assertRound(id, PricingAuction.Phase.Bidding, 3, round2Best);

        _commit(id, CP_A, 22_000, round3Best);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, round3Best);
        _closePhase(id);
        vm.expectEmit(address(auction));
        emit PricingAuction.RoundClosed(id, 3, round3Best);
        vm.expectEmit(address(auction));
        emit PricingAuction.BiddingEnded(id, 3, round3Best);
        auction.closeRound(id);
        _assertRound(id, PricingAuction.Phase.Ended, 3, round2Best);
        (bytes32 cp, uint256 price,) = auction.screen(id);
        assertEq(cp, CP_A, "winner");
        assertEq(price, round3Best, "decisive round's price");
    }

    function test_rounds_aDearerRoundEndsBidding() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 5);
        _soloRound(id, CP_A, PRICE);
        _commit(id, CP_A, 22_000, PRICE + 1);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE + 1);
        _closePhase(id);
        vm.expectEmit(address(auction));
        emit PricingAuction.BiddingEnded(id, 2, PRICE + 1);
        auction.closeRound(id);
    }

    function test_rounds_endAtTheEvsRoundLimit() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 2);
        _soloRound(id, CP_A, PRICE);
        _commit(id, CP_A, 22_000, PRICE / 2);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE / 2);
        _closePhase(id);
        vm.expectEmit(address(auction));
        emit PricingAuction.BiddingEnded(id, 2, PRICE / 2);
        auction.closeRound(id);
        _assertRound(id, PricingAuction.Phase.Ended, 2, PRICE);
    }

    function test_rounds_aRoundWithoutRevealLeavesThePreviousOneDecisive() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 5);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE + 5);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_B, 11_000, PRICE + 5);
        _close(id);
        // Round 2: CP_A commits and stays silent, CP_B sits it out; nobody reveals.
        _commit(id, CP_A, 22_000, PRICE - 1e13);
        _closePhase(id);
        vm.expectEmit(address(auction));
        emit PricingAuction.RoundClosed(id, 2, 0);
        vm.expectEmit(address(auction));
        emit PricingAuction.BiddingEnded(id, 1, PRICE);
        auction.closeRound(id);
        _assertRound(id, PricingAuction.Phase.Ended, 1, PRICE);

        // CP_A's round-1 bid is gone with its unrevealed commit; CP_B's still stands.
        (bytes32 cp, uint256 price,) = auction.screen(id);
        assertEq(cp, CP_B, "the bid that was not withdrawn by silence");
        assertEq(price, PRICE + 5, "its round-1 price");
    }

    function test_rounds_noRevealInRoundOneFailsAndReturnsTheDeposit() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 5);
        _commit(id, CP_A, 22_000, PRICE);
        _closePhase(id);
        vm.expectEmit(address(auction));
        emit PricingAuction.RoundClosed(id, 1, 0);
        vm.expectEmit(address(auction));
        emit PricingAuction.AuctionFailed(id);
        auction.closeRound(id);

        (,,,,,,, PricingAuction.Phase phase, uint256 deposit) = auction.invitation(id);
        assertEq(uint8(phase), uint8(PricingAuction.Phase.Failed), "failed");
        assertEq(deposit, 0, "deposit released");
        assertEq(auction.withdrawable(ev), DEPOSIT_WEI, "deposit credited back");
        // The silent bidder's bond is forfeited to the EV as on every other path.
        auction.refund(id, CP_A);
        assertEq(auction.withdrawable(ev), DEPOSIT_WEI + BID_BOND_WEI, "deposit + forfeited bond");
        assertEq(auction.withdrawable(signerOf[CP_A]), 0, "nothing for the silent bidder");
        vm.expectRevert(
            abi.encodeWithSelector(
                PricingAuction.WrongPhase.selector, id, PricingAuction.Phase.Failed, PricingAuction.Phase.Ended
            )
        );
        vm.prank(ev);
        auction.finalize(id, bytes32(0));
    }

    function test_finalize_failsWhenEveryDecisiveBidWentSilentLater() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 5);
        _soloRound(id, CP_A, PRICE);
        _commit(id, CP_A, 22_000, PRICE - 1e13);
        _close(id); // round 2 without a reveal: round 1 decides, but CP_A left its round-2 commit sealed
        (bytes32 cp,,) = auction.screen(id);
        assertEq(cp, bytes32(0), "nobody to choose");
        vm.expectEmit(address(auction));
        emit PricingAuction.AuctionFailed(id);
        vm.prank(ev);
        auction.finalize(id, keccak256("c"));
        assertEq(auction.withdrawable(ev), DEPOSIT_WEI, "deposit credited back");
    }

    // ================================================================ money

    /// @dev 3 bidders × 2 rounds; CP_C commits in round 2 and never reveals. Conservation is checked after every step.
    function test_money_bondsAndDepositAreConservedAndEndWhereTheyBelong() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 2);
        _assertConserved(id, "invited");
        _commit(id, CP_A, 22_000, PRICE);
        _assertConserved(id, "A committed");
        _commit(id, CP_B, 11_000, PRICE + 1e12);
        _commit(id, CP_C, 22_000, PRICE + 2e12);
        _assertConserved(id, "3 committed");
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_B, 11_000, PRICE + 1e12);
        _reveal(id, CP_C, 22_000, PRICE + 2e12);
        _assertConserved(id, "3 revealed");
        _close(id);
        _assertRound(id, PricingAuction.Phase.Bidding, 2, PRICE);
        _assertConserved(id, "round 1 closed");

        uint256 winningPrice = PRICE - 1e13;
        _commit(id, CP_A, 22_000, winningPrice);
        _commit(id, CP_B, 11_000, winningPrice + 1e12);
        _commit(id, CP_C, 22_000, winningPrice - 1e12);
        _assertConserved(id, "round 2 committed");
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, winningPrice);
        _reveal(id, CP_B, 11_000, winningPrice + 1e12);
        _assertConserved(id, "round 2 revealed but C");
        _close(id);
        _assertRound(id, PricingAuction.Phase.Ended, 2, PRICE);
        _assertConserved(id, "bidding ended");
        assertEq(address(auction).balance, DEPOSIT_WEI + 3 * BID_BOND_WEI, "deposit and three bonds held");

        _finalize(id, CP_A);
        _assertConserved(id, "decided");
        vm.expectEmit(address(auction));
        emit PricingAuction.BondSettled(id, CP_C, ev, BID_BOND_WEI, true);
        auction.refund(id, CP_C);
        _assertConserved(id, "C forfeited");
        vm.expectEmit(address(auction));
        emit PricingAuction.BondSettled(id, CP_A, signerOf[CP_A], BID_BOND_WEI, false);
        auction.refund(id, CP_A);
        auction.refund(id, CP_B);
        _assertConserved(id, "all refunded");
        assertEq(auction.withdrawable(ev), BID_BOND_WEI, "forfeited bond to the EV");
        assertEq(auction.withdrawable(signerOf[CP_A]), BID_BOND_WEI, "winner's bond back");
        assertEq(auction.withdrawable(signerOf[CP_B]), BID_BOND_WEI, "loser's bond back");
        assertEq(auction.withdrawable(signerOf[CP_C]), 0, "nothing for the silent bidder");

        vm.prank(ev);
        ledger.openAuctionSession{value: 0.01 ether}(id, R);
        _assertConserved(id, "session opened");
        assertEq(auction.withdrawable(ev), BID_BOND_WEI + DEPOSIT_WEI, "deposit back to the EV that kept its word");

        _withdrawAndCheck(ev, BID_BOND_WEI + DEPOSIT_WEI);
        _assertConserved(id, "ev withdrew");
        _withdrawAndCheck(signerOf[CP_A], BID_BOND_WEI);
        _withdrawAndCheck(signerOf[CP_B], BID_BOND_WEI);
        assertEq(address(auction).balance, 0, "auction emptied");
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NothingToWithdraw.selector, ev));
        vm.prank(ev);
        auction.withdraw();
    }

    function test_abandon_withoutADecisionSharesTheDepositAmongTheDecisiveBidders() public {
        uint256 deposit = MIN_DEPOSIT_WEI + 1; // odd: one wei cannot be split between two bidders
        vm.prank(ev);
        uint256 id = auction.invite{value: deposit}(HOME, ENERGY_WH, MIN_POWER_W, _weights(1, 0, 0, 0), ROUND_S, 2);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE + 1);
        _commit(id, CP_C, 22_000, PRICE + 2);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_B, 11_000, PRICE + 1);
        _reveal(id, CP_C, 22_000, PRICE + 2);
        _close(id);
        // Round 2: A and B bid again, C commits and stays silent: A and B are the decisive round's bidders.
        _commit(id, CP_A, 22_000, PRICE / 2);
        _commit(id, CP_B, 11_000, PRICE / 2 + 1);
        _commit(id, CP_C, 22_000, PRICE / 3);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE / 2);
        _reveal(id, CP_B, 11_000, PRICE / 2 + 1);
        _close(id);

        uint256 endedAt = vm.getBlockTimestamp();
        vm.warp(endedAt + DECISION_S);
        vm.expectRevert(
            abi.encodeWithSelector(PricingAuction.DecisionWindowOpen.selector, id, endedAt + DECISION_S)
        );
        auction.abandon(id);
        vm.warp(endedAt + DECISION_S + 1);
        vm.expectEmit(address(auction));
        emit PricingAuction.AuctionAbandoned(id, deposit);
        auction.abandon(id);
        assertEq(auction.withdrawable(ev), 1, "the indivisible wei stays the EV's");

        uint256 share = (deposit - 1) / 2;
        auction.refund(id, CP_A);
        auction.refund(id, CP_B);
        auction.refund(id, CP_C);
        assertEq(auction.withdrawable(signerOf[CP_A]), BID_BOND_WEI + share, "A: bond + share");
        assertEq(auction.withdrawable(signerOf[CP_B]), BID_BOND_WEI + share, "B: bond + share");
        assertEq(auction.withdrawable(signerOf[CP_C]), 0, "C forfeited, no share");
        assertEq(auction.withdrawable(ev), 1 + BID_BOND_WEI, "EV: the odd wei + C's bond");
        assertEq(address(auction).balance, 3 * BID_BOND_WEI + deposit, "everything still in the contract");
        assertEq(address(auction).balance, 2 * (BID_BOND_WEI + share) + 1 + BID_BOND_WEI, "and all of it credited");
    }

    function test_abandon_afterADecisionWithoutASessionPaysTheWinner() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE + 1);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_B, 11_000, PRICE + 1);
        _close(id);
        // The window restarts at the decision: an EV that decides late still gets the full time to open.
        vm.warp(vm.getBlockTimestamp() + DECISION_S - 10);
        _finalize(id, CP_A);
        uint256 decidedAt = vm.getBlockTimestamp();
        assertEq(auction.decisionDeadline(id), decidedAt + DECISION_S, "the window to open runs from the decision");
        vm.warp(decidedAt + DECISION_S);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.DecisionWindowOpen.selector, id, decidedAt + DECISION_S));
        auction.abandon(id);

        vm.warp(decidedAt + DECISION_S + 1);
        auction.abandon(id);
        assertEq(auction.withdrawable(signerOf[CP_A]), DEPOSIT_WEI, "the winner's bidder gets the deposit");
        assertEq(auction.withdrawable(ev), 0, "nothing back for the EV");
        auction.refund(id, CP_A);
        auction.refund(id, CP_B);
        assertEq(auction.withdrawable(signerOf[CP_A]), DEPOSIT_WEI + BID_BOND_WEI, "plus its bond");
        assertEq(auction.withdrawable(signerOf[CP_B]), BID_BOND_WEI, "the loser only its bond");

        vm.expectRevert(
            abi.encodeWithSelector(
                PricingAuction.WrongPhase.selector, id, PricingAuction.Phase.Abandoned, PricingAuction.Phase.Decided
            )
        );
        vm.prank(ev);
        ledger.openAuctionSession{value: 0.01 ether}(id, R);
    }

    function test_abandon_afterADecisionReturnsTheDepositWhenTheWinnerWentInactive() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _soloRound(id, CP_A, PRICE);
        _finalize(id, CP_A);
        uint256 decidedAt = vm.getBlockTimestamp();
        vm.prank(owner);
        registry.setActive(CP_A, false);
        vm.warp(decidedAt + DECISION_S + 1);
        auction.abandon(id);
        assertEq(auction.withdrawable(ev), DEPOSIT_WEI, "an inactive winner made the session impossible itself");
        assertEq(auction.withdrawable(signerOf[CP_A]), 0, "and earns nothing for it");
    }

    // ================================================================ ledger binding (Phase 3)

    function test_openAuctionSession_opensAtTheAuctionPriceAndSettlesNormally() public {
        uint256 auctionPrice = 333_333_333_333_337; // not a multiple of 1000: the cost rounds up
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _commit(id, CP_A, 22_000, auctionPrice);
        _commit(id, CP_B, 11_000, auctionPrice + 1);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, auctionPrice);
        _reveal(id, CP_B, 11_000, auctionPrice + 1);
        _close(id);
        _finalize(id, CP_A);

        uint256 sessionDepositWei = 0.01 ether;
        vm.expectEmit(address(auction));
        emit PricingAuction.DecisionClaimed(id, CP_A, ev);
        vm.expectEmit(address(ledger));
        emit ChargingLedger.SessionOpened(1, CP_A, ev, sessionDepositWei, auctionPrice, ENERGY_WH);
        vm.expectEmit(address(ledger));
        emit ChargingLedger.AuctionSessionOpened(1, id);
        vm.prank(ev);
        uint256 sessionId = ledger.openAuctionSession{value: sessionDepositWei}(id, R);
        assertEq(sessionId, 1, "first session");
        assertEq(auction.withdrawable(ev), DEPOSIT_WEI, "auction deposit withdrawable once the session is open");
        (,,,,,,, PricingAuction.Phase phase, uint256 heldDeposit) = auction.invitation(id);
        assertEq(uint8(phase), uint8(PricingAuction.Phase.SessionOpened), "session opened");
        assertEq(heldDeposit, 0, "no deposit held");
        (bytes32 cpId, address sessionEv,, uint256 held, uint256 price, uint32 maxEnergyWh,,,,) = ledger.session(sessionId);
        assertEq(cpId, CP_A, "winner's charge point");
        assertEq(sessionEv, ev, "the EV");
        assertEq(held, sessionDepositWei, "session deposit");
        assertEq(price, auctionPrice, "auction price, not the listed one");
        assertEq(maxEnergyWh, ENERGY_WH, "the invitation's energy");

        vm.prank(signerOf[CP_A]);
        ledger.authorize(sessionId);
        // ceil(6_001 × 333_333_333_333_337 / 1000) = ceil(2_000_333_333_333_355.337)
        uint256 costWei = 2_000_333_333_333_356;
        _settle(sessionId, CP_A, 6_001);
        assertEq(ledger.withdrawable(owner), costWei, "owner paid at the auction price, rounded up");
        assertEq(ledger.withdrawable(ev), sessionDepositWei - costWei, "the rest back to the EV");
        assertEq(ledger.credibility(ev), 1, "a clean session like any other");
    }

    function test_openAuctionSession_refusesAWrongRAnotherEvAndASecondOpen() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _soloRound(id, CP_A, PRICE);
        _finalize(id, CP_A);

        vm.expectRevert(abi.encodeWithSelector(PricingAuction.DecisionMismatch.selector, id));
        vm.prank(ev);
        ledger.openAuctionSession{value: 0.01 ether}(id, keccak256("not r"));

        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NotInvitationEv.selector, id, ev2));
        vm.prank(ev2);
        ledger.openAuctionSession{value: 0.01 ether}(id, R);

        vm.prank(ev);
        ledger.openAuctionSession{value: 0.01 ether}(id, R);
        vm.expectRevert(
            abi.encodeWithSelector(
                PricingAuction.WrongPhase.selector, id, PricingAuction.Phase.SessionOpened, PricingAuction.Phase.Decided
            )
        );
        vm.prank(ev);
        ledger.openAuctionSession{value: 0.01 ether}(id, R);
    }

    function test_openAuctionSession_refusedBeforeTheDecision() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _soloRound(id, CP_A, PRICE);
        vm.expectRevert(
            abi.encodeWithSelector(
                PricingAuction.WrongPhase.selector, id, PricingAuction.Phase.Ended, PricingAuction.Phase.Decided
            )
        );
        vm.prank(ev);
        ledger.openAuctionSession{value: 0.01 ether}(id, R);
    }

    /// @dev The commitment binds the winner too: an r committed for a loser does not open the winner's session.
    function test_openAuctionSession_refusesACommitmentToAnotherChargePoint() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _commit(id, CP_A, 22_000, PRICE);
        _commit(id, CP_B, 11_000, PRICE + 1);
        _revealPhase(id);
        _reveal(id, CP_A, 22_000, PRICE);
        _reveal(id, CP_B, 11_000, PRICE + 1);
        _close(id);
        bytes32 committedToTheLoser = auction.decisionCommitmentOf(ev, CP_B, R);
        vm.prank(ev);
        auction.finalize(id, committedToTheLoser);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.DecisionMismatch.selector, id));
        vm.prank(ev);
        ledger.openAuctionSession{value: 0.01 ether}(id, R);
    }

    function test_openAuctionSession_refusedWhenNoAuctionIsWired() public {
        (, ChargingLedger unwired,,) = AuctionDeployment.deploy(_parameters(), false);
        assertEq(unwired.pricingAuction(), address(0), "not wired");
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.PricingAuctionNotWired.selector));
        vm.prank(ev);
        unwired.openAuctionSession{value: 0.01 ether}(1, R);
    }

    function test_claimDecision_onlyFromTheLedger() public {
        uint256 id = _invite(_weights(1, 0, 0, 0), 1);
        _soloRound(id, CP_A, PRICE);
        _finalize(id, CP_A);
        vm.expectRevert(abi.encodeWithSelector(PricingAuction.NotLedger.selector, ev));
        vm.prank(ev);
        auction.claimDecision(id, ev, R);
    }

    function test_setPricingAuction_onceAndByTheDeployerOnly() public {
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.PricingAuctionAlreadyWired.selector, address(auction)));
        ledger.setPricingAuction(PricingAuction(address(0xdead)));
        (, ChargingLedger unwired,,) = AuctionDeployment.deploy(_parameters(), false);
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NotDeployer.selector, stranger));
        vm.prank(stranger);
        unwired.setPricingAuction(auction);
    }

    // ================================================================ helpers

    function _parameters() internal pure returns (AuctionParameters memory) {
        return AuctionParameters({
            bidBondWei: BID_BOND_WEI,
            minDepositWei: MIN_DEPOSIT_WEI,
            convergenceBps: CONVERGENCE_BPS,
            maxBidders: MAX_BIDDERS,
            decisionSeconds: DECISION_S
        });
    }

    function _register(bytes32 cpId, uint64 areaId, uint256 key, uint32 maxPowerW, string memory label) internal {
        address signer = vm.addr(key);
        vm.label(signer, label);
        signerOf[cpId] = signer;
        keyOf[cpId] = key;
        vm.prank(owner);
        registry.registerChargePoint(cpId, Registry.CpKind.Private, areaId, signer, LISTED_PRICE, maxPowerW, hex"c0ffee");
    }

    function _weights(uint16 price, uint16 power, uint16 distance, uint16 reputation)
        internal
        pure
        returns (uint16[4] memory)
    {
        return [price, power, distance, reputation];
    }

    function _invite(uint16[4] memory weights, uint8 maxRounds) internal returns (uint256 id) {
        vm.prank(ev);
        id = auction.invite{value: DEPOSIT_WEI}(HOME, ENERGY_WH, MIN_POWER_W, weights, ROUND_S, maxRounds);
    }

    function _salt(uint256 id, bytes32 cpId, uint8 round) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", id, cpId, round));
    }

    function _round(uint256 id) internal view returns (uint8 round) {
        (, round,,,,,,,) = auction.progress(id);
    }

    function _fund(bytes32 cpId) internal {
        vm.deal(signerOf[cpId], signerOf[cpId].balance + BID_BOND_WEI);
    }

    /// @dev Commits from the charge point's signer, with the bond on its first commit to this invitation.
    function _commit(uint256 id, bytes32 cpId, uint32 powerW, uint256 price) internal {
        (,,,,,, PricingAuction.Bond bond) = auction.bidOf(id, cpId);
        uint256 value = bond == PricingAuction.Bond.None ? BID_BOND_WEI : 0;
        _fund(cpId);
        uint8 round = _round(id);
        bytes32 commitment = auction.bidCommitment(id, cpId, powerW, price, _salt(id, cpId, round));
        assertEq(
            commitment, keccak256(abi.encode(id, cpId, powerW, price, _salt(id, cpId, round))), "commitment layout of DESIGN 4.4"
        );
        vm.expectEmit(address(auction));
        emit PricingAuction.BidCommitted(id, cpId, round);
        vm.prank(signerOf[cpId]);
        auction.commitBid{value: value}(id, cpId, commitment);
    }

    /// @dev Reveals as the signer. It reads the round first, so a test expecting a revert calls `revealBid` itself.
    function _reveal(uint256 id, bytes32 cpId, uint32 powerW, uint256 price) internal {
        uint8 round = _round(id);
        vm.prank(signerOf[cpId]);
        auction.revealBid(id, cpId, powerW, price, _salt(id, cpId, round));
    }

    function _revealPhase(uint256 id) internal {
        (,, uint256 commitEndsAt,,,,,,) = auction.progress(id);
        vm.warp(commitEndsAt);
    }

    function _closePhase(uint256 id) internal {
        (,,, uint256 revealEndsAt,,,,,) = auction.progress(id);
        vm.warp(revealEndsAt);
    }

    function _close(uint256 id) internal {
        _closePhase(id);
        auction.closeRound(id);
    }

    function _soloRound(uint256 id, bytes32 cpId, uint256 price) internal {
        _commit(id, cpId, 22_000, price);
        _revealPhase(id);
        _reveal(id, cpId, 22_000, price);
        _close(id);
    }

    function _assertRound(uint256 id, PricingAuction.Phase expectedPhase, uint8 expectedRound, uint256 lastBest)
        internal
        view
    {
        (PricingAuction.Phase phase, uint8 round,,,, uint256 bestLast,,,) = auction.progress(id);
        assertEq(uint8(phase), uint8(expectedPhase), "phase");
        assertEq(round, expectedRound, "round");
        assertEq(bestLast, lastBest, "best price of the previous round");
    }

    function _finalize(uint256 id, bytes32 winner) internal {
        bytes32 c = auction.decisionCommitmentOf(ev, winner, R);
        assertEq(c, keccak256(abi.encode(ev, winner, R)), "c = H(EV, CP, r)");
        vm.prank(ev);
        auction.finalize(id, c);
    }

    /// @dev `screen()` is what the EV builds its commitment from, so it must agree with what `finalize` records.
    function _assertScreenedAndDecided(uint256 id, bytes32 expectedCp, uint256 expectedPrice, uint256 expectedScore)
        internal
    {
        (bytes32 cp, uint256 price, uint256 score) = auction.screen(id);
        assertEq(cp, expectedCp, "screened winner");
        assertEq(price, expectedPrice, "screened price");
        assertEq(score, expectedScore, "screened score");
        bytes32 c = auction.decisionCommitmentOf(ev, cp, R);
        vm.expectEmit(address(auction));
        emit PricingAuction.Decided(id, cp, price, c);
        vm.prank(ev);
        auction.finalize(id, c);
        (,,,,,,, bytes32 winnerCpId, bytes32 decisionCommitment) = auction.progress(id);
        assertEq(winnerCpId, expectedCp, "recorded winner");
        assertEq(decisionCommitment, c, "recorded commitment");
    }

    function _distanceOf(uint256 id, bytes32 cpId) internal view returns (uint256 distanceCells) {
        (,,,,, distanceCells,) = auction.bidOf(id, cpId);
    }

    /// @dev Balance == held EV deposit + bonds not yet settled + every credit: the contract owes exactly what it holds.
    function _assertConserved(uint256 id, string memory step) internal view {
        (,,,,,,,, uint256 deposit) = auction.invitation(id);
        uint256 heldBonds;
        for (uint256 i = 0; i < bidderCps.length; ++i) {
            (,,,,,, PricingAuction.Bond bond) = auction.bidOf(id, bidderCps[i]);
            if (bond == PricingAuction.Bond.Held) heldBonds += BID_BOND_WEI;
        }
        uint256 credits = auction.withdrawable(ev) + auction.withdrawable(ev2) + auction.withdrawable(owner);
        for (uint256 i = 0; i < bidderCps.length; ++i) {
            credits += auction.withdrawable(signerOf[bidderCps[i]]);
        }
        assertEq(address(auction).balance, deposit + heldBonds + credits, string.concat("conserved: ", step));
    }

    function _withdrawAndCheck(address account, uint256 expectedWei) internal {
        assertEq(auction.withdrawable(account), expectedWei, "credit before withdraw");
        uint256 before = account.balance;
        uint256 auctionBefore = address(auction).balance;
        vm.expectEmit(address(auction));
        emit PricingAuction.Withdrawn(account, expectedWei);
        vm.prank(account);
        auction.withdraw();
        assertEq(account.balance, before + expectedWei, "paid");
        assertEq(address(auction).balance, auctionBefore - expectedWei, "left the auction");
        assertEq(auction.withdrawable(account), 0, "zeroed");
    }

    function _settle(uint256 sessionId, bytes32 cpId, uint64 energyWh) internal {
        uint256 now_ = vm.getBlockTimestamp();
        ledger.settle(
            keyOf[cpId],
            SessionTotal({
                sessionId: sessionId,
                cpId: cpId,
                meterStartWh: meterWh,
                meterStopWh: meterWh + energyWh,
                startedAt: uint64(now_),
                stoppedAt: uint64(now_ + 3_600),
                evBehaviour: 0
            })
        );
        meterWh += energyWh;
    }

    /// @dev A real clean session by ev2 at `cpId`, rated 3: ev2 earns R_v = 1, so its rating moves R_cp (eq. 2).
    function _earnReputation(bytes32 cpId) internal {
        vm.prank(ev2);
        uint256 sessionId = ledger.openSession{value: 0.02 ether}(cpId, 20_000);
        vm.prank(signerOf[cpId]);
        ledger.authorize(sessionId);
        _settle(sessionId, cpId, 5_000);
        vm.prank(ev2);
        evaluations.rate(sessionId, 3);
    }

    /// @dev Settles more energy than a 1-wei deposit covers: the rest becomes debt and `canCharge` turns false.
    function _putInDebt(address who) internal {
        vm.prank(who);
        uint256 sessionId = ledger.openSession{value: 1}(CP_A, 20_000);
        vm.prank(signerOf[CP_A]);
        ledger.authorize(sessionId);
        _settle(sessionId, CP_A, 1_000);
        assertGt(ledger.debt(who), 0, "in debt");
    }
}
