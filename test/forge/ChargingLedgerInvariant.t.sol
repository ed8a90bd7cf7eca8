// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Registry} from "../../contracts/Registry.sol";
import {ChargingLedger} from "../../contracts/ChargingLedger.sol";
import {Assertions, Test} from "./helpers/Test.sol";
import {LedgerDeployment, SessionTotal, SessionTotalSigner} from "./helpers/LedgerFixture.sol";

/**
 * @dev Drives the ledger the way piles and EVs do: three EVs, two owners with three charge points (each with its own
 * signing key), sessions opened, authorized, settled, cancelled and expired, withdrawals and debt payments, and time
 * moving on. Inputs are bounded so every action is one the ledger must accept; where an action is expected to be
 * refused (too early, window closed, replay) the handler checks the exact error. The suite runs with
 * fail-on-revert, so an unexpected revert anywhere is a failure, not a skipped call.
 *
 * Ghost variables count what went in and out, independently of the ledger's own bookkeeping.
 */
contract LedgerHandler is Assertions {
    using SessionTotalSigner for ChargingLedger;
    uint256 internal constant EV_COUNT = 3;
    uint256 internal constant CP_COUNT = 3;
    uint32 internal constant MAX_ENERGY_CAP_WH = 80_000;

    ChargingLedger public immutable ledger;
    Registry public immutable registry;

    address[EV_COUNT] public evs;
    address[2] public owners;
    bytes32[CP_COUNT] public cpIds;
    uint256[CP_COUNT] internal _cpSignerKeys;
    address[CP_COUNT] internal _cpOwners;

    uint256[] internal _sessionIds;
    mapping(uint256 sessionId => uint256 cpIndex) internal _cpOf;
    mapping(uint256 sessionId => uint256 depositWei) internal _depositOf;

    // ---------------------------------------------------------------- ghosts
    uint256 public ghostHeldWei; // deposits of sessions still opened or authorized
    uint256 public ghostDepositedWei;
    uint256 public ghostWithdrawnWei;
    uint256 public ghostDebtIncurredWei;
    uint256 public ghostDebtPaidWei;
    uint256 public ghostSettles;
    mapping(address ev => int256 score) public ghostScore;
    /// @dev How often each path ran (e.g. "settle", "cancel.early"): to check the handler still reaches every path,
    /// assert a count is 0 in a throwaway invariant and watch it fail.
    mapping(string action => uint256 count) public calls;

    constructor(ChargingLedger ledger_, Registry registry_) {
        ledger = ledger_;
        registry = registry_;
        for (uint256 i = 0; i < EV_COUNT; ++i) {
            evs[i] = vm.addr(0xE0 + i);
            vm.label(evs[i], string.concat("ev", vm.toString(i)));
        }
        for (uint256 i = 0; i < owners.length; ++i) {
            owners[i] = vm.addr(0xA0 + i);
            vm.label(owners[i], string.concat("owner", vm.toString(i)));
        }
        // Owner 0 has two piles, owner 1 one.
        for (uint256 i = 0; i < CP_COUNT; ++i) {
            cpIds[i] = keccak256(abi.encode("cp", i));
            _cpSignerKeys[i] = 0x5100 + i;
            _cpOwners[i] = owners[i == 0 ? 0 : i - 1];
        }
    }

    /// @dev Called by the test (the registry's authority) once it has attested the actors. Prices run from 0.0001 to
    /// 0.0005 ether per kWh, one of them not a round number so costs round up.
    function registerChargePoints() external {
        uint256[CP_COUNT] memory prices = [uint256(100_000_000_000_000), 250_000_000_000_001, 500_000_000_000_000];
        for (uint256 i = 0; i < CP_COUNT; ++i) {
            vm.prank(_cpOwners[i]);
            registry.registerChargePoint(
                cpIds[i], Registry.CpKind.Private, 1, vm.addr(_cpSignerKeys[i]), prices[i], 11_000, hex"01"
            );
        }
    }

    // ================================================================ actions

    function openSession(uint256 evSeed, uint256 cpSeed, uint256 maxEnergySeed, uint256 depositSeed) external {
        address ev = evs[evSeed % EV_COUNT];
        uint256 cpIndex = cpSeed % CP_COUNT;
        uint32 maxEnergyWh = uint32(bound(maxEnergySeed, 1, MAX_ENERGY_CAP_WH));
        uint256 depositWei = bound(depositSeed, 1, 0.05 ether);
        uint256 owedWei = ledger.debt(ev);
        if (owedWei > 0) {
            calls["openSession.inDebt"]++;
            vm.deal(ev, ev.balance + depositWei);
            vm.expectRevert(abi.encodeWithSelector(ChargingLedger.OutstandingDebt.selector, ev, owedWei));
            vm.prank(ev);
            ledger.openSession{value: depositWei}(cpIds[cpIndex], maxEnergyWh);
            return;
        }
        if (ledger.credibility(ev) < 0) {
            (, uint256 price,) = registry.sessionTerms(cpIds[cpIndex]);
            uint256 requiredWei = _ceilCost(2 * uint256(maxEnergyWh), price);
            if (depositWei < requiredWei) depositWei = requiredWei;
        }
        vm.deal(ev, ev.balance + depositWei);
        vm.prank(ev);
        uint256 sessionId = ledger.openSession{value: depositWei}(cpIds[cpIndex], maxEnergyWh);
        assertEq(sessionId, _sessionIds.length + 1, "session ids are sequential");
        _sessionIds.push(sessionId);
        _cpOf[sessionId] = cpIndex;
        _depositOf[sessionId] = depositWei;
        ghostHeldWei += depositWei;
        ghostDepositedWei += depositWei;
        calls["openSession"]++;
    }

    function authorize(uint256 sessionSeed, bool byOwner) external {
        // Mostly the newest opened session (likely inside its window), sometimes any, to reach the late path too.
        uint256 sessionId = sessionSeed % 4 == 0
            ? _pick(sessionSeed, ChargingLedger.Status.Opened)
            : _newest(ChargingLedger.Status.Opened);
        if (sessionId == 0) return;
        uint256 cpIndex = _cpOf[sessionId];
        uint256 deadline = _stampedAt(sessionId) + ledger.authTimeout();
        address authorizer = byOwner ? _cpOwners[cpIndex] : vm.addr(_cpSignerKeys[cpIndex]);
        if (_now() > deadline) {
            vm.expectRevert(
                abi.encodeWithSelector(ChargingLedger.AuthorizationWindowClosed.selector, sessionId, deadline)
            );
            vm.prank(authorizer);
            ledger.authorize(sessionId);
            calls["authorize.late"]++;
            return;
        }
        vm.prank(authorizer);
        ledger.authorize(sessionId);
        assertEq(_stampedAt(sessionId), _now(), "authorization restamps the session");
        calls["authorize"]++;
    }

    function settle(uint256 sessionSeed, uint256 energySeed, bool violation, uint256 relayerSeed) external {
        uint256 sessionId = _pick(sessionSeed, ChargingLedger.Status.Authorized);
        if (sessionId == 0) return;
        (,,,, uint256 price, uint32 maxEnergyWh,,,,) = ledger.session(sessionId);
        // Up to twice the requested energy: the pile may overshoot (meter lag), which leaves a debt.
        uint64 energyWh = uint64(bound(energySeed, 0, 2 * uint256(maxEnergyWh)));
        SessionTotal memory total = SessionTotal({
            sessionId: sessionId,
            cpId: cpIds[_cpOf[sessionId]],
            meterStartWh: 5_000_000,
            meterStopWh: 5_000_000 + energyWh,
            startedAt: uint64(_now()),
            stoppedAt: uint64(_now()) + 3_600,
            evBehaviour: violation ? int8(-1) : int8(0)
        });
        bytes memory signature = SessionTotalSigner.sign(ledger, _cpSignerKeys[_cpOf[sessionId]], total);

        address ev = _evOf(sessionId);
        uint256 depositWei = _depositOf[sessionId];
        uint256 costWei = _ceilCost(energyWh, price);
        uint256 ownerBefore = ledger.withdrawable(_cpOwners[_cpOf[sessionId]]);
        uint256 evBefore = ledger.withdrawable(ev);
        uint256 debtBefore = ledger.debt(ev);

        vm.prank(relayerSeed % 2 == 0 ? ev : address(uint160(relayerSeed)));
        _settle(total, signature);

        uint256 paidWei = costWei < depositWei ? costWei : depositWei;
        address owner = _cpOwners[_cpOf[sessionId]];
        if (owner != ev) {
            assertEq(ledger.withdrawable(owner) - ownerBefore, paidWei, "owner credited min(cost, deposit)");
        }
        assertEq(ledger.withdrawable(ev) - evBefore, depositWei - paidWei, "EV refunded deposit - paid");
        assertEq(ledger.debt(ev) - debtBefore, costWei - paidWei, "debt grows by the shortfall");

        ghostHeldWei -= depositWei;
        ghostDebtIncurredWei += costWei - paidWei;
        ghostSettles++;
        ghostScore[ev] += violation ? int256(-1) : (energyWh == 0 || costWei > depositWei ? int256(0) : int256(1));
        calls["settle"]++;

        // The same signed total can never settle twice.
        vm.expectRevert(abi.encodeWithSelector(ChargingLedger.AlreadySettled.selector, sessionId));
        _settle(total, signature);
    }

    function cancel(uint256 sessionSeed) external {
        uint256 sessionId = _pick(sessionSeed, ChargingLedger.Status.Opened);
        if (sessionId == 0) return;
        address ev = _evOf(sessionId);
        uint256 allowedFrom = _stampedAt(sessionId) + ledger.authTimeout() + 1;
        if (_now() < allowedFrom) {
            vm.expectRevert(abi.encodeWithSelector(ChargingLedger.TooEarly.selector, sessionId, allowedFrom));
            vm.prank(ev);
            ledger.cancel(sessionId);
            calls["cancel.early"]++;
            return;
        }
        uint256 evBefore = ledger.withdrawable(ev);
        vm.prank(ev);
        ledger.cancel(sessionId);
        assertEq(ledger.withdrawable(ev) - evBefore, _depositOf[sessionId], "cancel refunds the deposit");
        ghostHeldWei -= _depositOf[sessionId];
        calls["cancel"]++;
    }

    function expire(uint256 sessionSeed, address caller) external {
        uint256 sessionId = _pick(sessionSeed, ChargingLedger.Status.Authorized);
        if (sessionId == 0) return;
        address ev = _evOf(sessionId);
        uint256 allowedFrom = _stampedAt(sessionId) + ledger.settleTimeout() + 1;
        if (_now() < allowedFrom) {
            vm.expectRevert(abi.encodeWithSelector(ChargingLedger.TooEarly.selector, sessionId, allowedFrom));
            vm.prank(caller);
            ledger.expire(sessionId);
            calls["expire.early"]++;
            return;
        }
        uint256 evBefore = ledger.withdrawable(ev);
        vm.prank(caller);
        ledger.expire(sessionId);
        assertEq(ledger.withdrawable(ev) - evBefore, _depositOf[sessionId], "expire refunds the deposit");
        ghostHeldWei -= _depositOf[sessionId];
        calls["expire"]++;
    }

    function withdraw(uint256 actorSeed) external {
        address account = _actor(actorSeed);
        uint256 amount = ledger.withdrawable(account);
        if (amount == 0) {
            vm.expectRevert(abi.encodeWithSelector(ChargingLedger.NothingToWithdraw.selector, account));
            vm.prank(account);
            ledger.withdraw();
            return;
        }
        uint256 balanceBefore = account.balance;
        vm.prank(account);
        ledger.withdraw();
        assertEq(account.balance - balanceBefore, amount, "withdraw pays the whole credit");
        assertEq(ledger.withdrawable(account), 0, "credit cleared");
        ghostWithdrawnWei += amount;
        calls["withdraw"]++;
    }

    function payDebt(uint256 evSeed, uint256 amountSeed) external {
        address ev;
        uint256 owed;
        for (uint256 i = 0; i < EV_COUNT && owed == 0; ++i) {
            ev = evs[(evSeed % EV_COUNT + i) % EV_COUNT];
            owed = ledger.debt(ev);
        }
        if (owed == 0) return;
        // Half the time pay in full, else a random part.
        uint256 amount = amountSeed % 2 == 0 ? owed : bound(amountSeed, 1, owed);
        vm.deal(ev, ev.balance + amount);
        vm.prank(ev);
        ledger.payDebt{value: amount}();
        assertEq(ledger.debt(ev), owed - amount, "debt reduced by the payment");
        assertEq(ledger.canCharge(ev), amount == owed, "may charge again only when paid in full");
        ghostDebtPaidWei += amount;
        calls[amount == owed ? "payDebt.full" : "payDebt.part"]++;
    }

    /// @dev Mostly steps inside the authorization window, sometimes past both timeouts.
    function warp(uint256 secondsSeed) external {
        uint256 step = secondsSeed % 4 == 0 ? bound(secondsSeed, 1, 3 days) : bound(secondsSeed, 1, 900);
        vm.warp(_now() + step);
        calls["warp"]++;
    }

    // ================================================================ views for the invariants

    function sessionIds() external view returns (uint256[] memory) {
        return _sessionIds;
    }

    /// @dev Every account the ledger can owe: the EVs and the owners (relayers and callers are never credited).
    function accounts() external view returns (address[] memory all) {
        all = new address[](EV_COUNT + owners.length);
        for (uint256 i = 0; i < EV_COUNT; ++i) all[i] = evs[i];
        for (uint256 i = 0; i < owners.length; ++i) all[EV_COUNT + i] = owners[i];
    }

    // ================================================================ internals

    function _settle(SessionTotal memory total, bytes memory signature) internal {
        ledger.submit(total, signature);
    }

    /// @dev The first session in `status`, scanning from a random start; 0 when there is none.
    function _pick(uint256 seed, ChargingLedger.Status status) internal view returns (uint256) {
        uint256 count = _sessionIds.length;
        if (count == 0) return 0;
        uint256 start = seed % count;
        for (uint256 i = 0; i < count; ++i) {
            uint256 sessionId = _sessionIds[(start + i) % count];
            (,, ChargingLedger.Status current,,,,,,,) = ledger.session(sessionId);
            if (current == status) return sessionId;
        }
        return 0;
    }

    function _newest(ChargingLedger.Status status) internal view returns (uint256) {
        for (uint256 i = _sessionIds.length; i > 0; --i) {
            (,, ChargingLedger.Status current,,,,,,,) = ledger.session(_sessionIds[i - 1]);
            if (current == status) return _sessionIds[i - 1];
        }
        return 0;
    }

    function _actor(uint256 seed) internal view returns (address) {
        uint256 index = seed % (EV_COUNT + owners.length);
        return index < EV_COUNT ? evs[index] : owners[index - EV_COUNT];
    }

    function _evOf(uint256 sessionId) internal view returns (address ev) {
        (, ev,,,,,,,,) = ledger.session(sessionId);
    }

    function _stampedAt(uint256 sessionId) internal view returns (uint256) {
        (,,,,,, uint64 stampedAt,,,) = ledger.session(sessionId);
        return stampedAt;
    }

    /// @dev Read through the cheatcode: under via-IR a `block.timestamp` read may be reused across `vm.warp`.
    function _now() internal view returns (uint256) {
        return vm.getBlockTimestamp();
    }

    function _ceilCost(uint256 energyWh, uint256 priceWeiPerKWh) internal pure returns (uint256) {
        uint256 product = energyWh * priceWeiPerKWh;
        return product / 1000 + (product % 1000 == 0 ? 0 : 1);
    }
}

/// forge-config: default.invariant.fail-on-revert = true
contract ChargingLedgerInvariantTest is Test {
    ChargingLedger internal ledger;
    Registry internal registry;
    LedgerHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        (registry, ledger) = LedgerDeployment.deploy();
        uint64 validUntil = uint64(1_700_000_000 + 3_650 days);
        handler = new LedgerHandler(ledger, registry);
        for (uint256 i = 0; i < 3; ++i) registry.attest(handler.evs(i), LedgerDeployment.ROLE_EV, validUntil);
        for (uint256 i = 0; i < 2; ++i) registry.attest(handler.owners(i), LedgerDeployment.ROLE_OWNER, validUntil);
        handler.registerChargePoints();

        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](8);
        selectors[0] = LedgerHandler.openSession.selector;
        selectors[1] = LedgerHandler.authorize.selector;
        selectors[2] = LedgerHandler.settle.selector;
        selectors[3] = LedgerHandler.cancel.selector;
        selectors[4] = LedgerHandler.expire.selector;
        selectors[5] = LedgerHandler.withdraw.selector;
        selectors[6] = LedgerHandler.payDebt.selector;
        selectors[7] = LedgerHandler.warp.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @dev Pull payments are solvent: the ledger holds exactly the deposits of live sessions plus every credit.
    function invariant_balanceEqualsOwed() public view {
        uint256[] memory ids = handler.sessionIds();
        uint256 heldWei;
        for (uint256 i = 0; i < ids.length; ++i) {
            (,,, uint256 heldDeposit,,,,,,) = ledger.session(ids[i]);
            heldWei += heldDeposit;
        }
        address[] memory accounts = handler.accounts();
        uint256 withdrawableWei;
        for (uint256 i = 0; i < accounts.length; ++i) {
            withdrawableWei += ledger.withdrawable(accounts[i]);
        }
        assertEq(heldWei, handler.ghostHeldWei(), "held deposits (ledger views) == ghost");
        assertEq(address(ledger).balance, heldWei + withdrawableWei, "balance == held deposits + withdrawable");
        assertEq(
            address(ledger).balance,
            handler.ghostDepositedWei() + handler.ghostDebtPaidWei() - handler.ghostWithdrawnWei(),
            "balance == deposited + debt paid - withdrawn"
        );
    }

    function invariant_recordCountMatches() public view {
        (uint256 sessions, uint256 chargingRecords, uint256 evaluationRecords, uint256 globalRecords) = ledger.counts();
        assertEq(chargingRecords, handler.ghostSettles(), "charging records == settles");
        assertEq(sessions, handler.sessionIds().length, "sessions == opens");
        assertEq(evaluationRecords, 0, "no evaluations wired");
        assertEq(globalRecords, chargingRecords + evaluationRecords, "one global sequence across both types");
    }

    function invariant_debtAndCredibilityMatchGhosts() public view {
        uint256 owedWei;
        for (uint256 i = 0; i < 3; ++i) {
            address ev = handler.evs(i);
            uint256 debtWei = ledger.debt(ev);
            owedWei += debtWei;
            assertEq(ledger.canCharge(ev), debtWei == 0, "canCharge iff no debt");
            assertEq(ledger.credibility(ev), handler.ghostScore(ev), "R_v == sum of B_vi");
        }
        assertEq(owedWei, handler.ghostDebtIncurredWei() - handler.ghostDebtPaidWei(), "debt == incurred - paid");
    }
}
