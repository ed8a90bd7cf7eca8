// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Registry} from "../../../contracts/Registry.sol";
import {ChargingLedger} from "../../../contracts/ChargingLedger.sol";
import {Vm} from "./Vm.sol";

/// @dev A pile's signed `SessionTotal` (DESIGN §4.2), as the agent sends it to `settle`.
struct SessionTotal {
    uint256 sessionId;
    bytes32 cpId;
    uint64 meterStartWh;
    uint64 meterStopWh;
    uint64 startedAt;
    uint64 stoppedAt;
    int8 evBehaviour;
}

/**
 * @dev Signs like the pile: the digest comes from the ledger's own `sessionTotalDigest` view, so the test of that view
 * against a hand-computed EIP-712 hash (ChargingLedger.t.sol) is what ties these signatures to the standard.
 */
library SessionTotalSigner {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    function sign(ChargingLedger ledger, uint256 signerKey, SessionTotal memory total)
        internal
        view
        returns (bytes memory signature)
    {
        bytes32 digest = ledger.sessionTotalDigest(
            total.sessionId,
            total.cpId,
            total.meterStartWh,
            total.meterStopWh,
            total.startedAt,
            total.stoppedAt,
            total.evBehaviour
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(signerKey, digest);
        return abi.encodePacked(r, s, v);
    }

    function settle(ChargingLedger ledger, uint256 signerKey, SessionTotal memory total) internal {
        submit(ledger, total, sign(ledger, signerKey, total));
    }

    /// @dev Sends `total` with any signature, for tests of forged, replayed and malformed ones.
    function submit(ChargingLedger ledger, SessionTotal memory total, bytes memory signature) internal {
        ledger.settle(
            total.sessionId,
            total.meterStartWh,
            total.meterStopWh,
            total.startedAt,
            total.stoppedAt,
            total.evBehaviour,
            signature
        );
    }
}

/// @dev Deploys a Registry and a ChargingLedger with the production default timeouts (DESIGN §4.2: 600 s, 2 days).
library LedgerDeployment {
    uint64 internal constant AUTH_TIMEOUT_S = 600;
    uint64 internal constant SETTLE_TIMEOUT_S = 2 days;
    uint8 internal constant ROLE_EV = 1;
    uint8 internal constant ROLE_OWNER = 2;

    /// @dev The caller becomes the identity authority and the ledger's deployer.
    function deploy() internal returns (Registry registry, ChargingLedger ledger) {
        registry = new Registry(address(0));
        ledger = new ChargingLedger(registry, AUTH_TIMEOUT_S, SETTLE_TIMEOUT_S);
    }
}

import {Evaluations} from "../../../contracts/Evaluations.sol";

/**
 * @dev Deploys Registry, ChargingLedger and Evaluations and wires Evaluations into the ledger, as `chain deploy` does,
 * with the defaults of DESIGN §4.3 (μ = 2, σ = 1.5, one-day bookkeeper period) unless told otherwise.
 */
library EvaluationsDeployment {
    int256 internal constant MU = 2e18;
    int256 internal constant SIGMA = 1.5e18;
    uint64 internal constant BOOKKEEPER_PERIOD_S = 1 days;

    /// @dev The caller becomes the identity authority and the ledger's deployer (the only one that may wire it).
    function deploy() internal returns (Registry registry, ChargingLedger ledger, Evaluations evaluations) {
        return deploy(MU, SIGMA, BOOKKEEPER_PERIOD_S);
    }

    function deploy(int256 mu, int256 sigma, uint64 bookkeeperPeriodS)
        internal
        returns (Registry registry, ChargingLedger ledger, Evaluations evaluations)
    {
        (registry, ledger) = LedgerDeployment.deploy();
        evaluations = new Evaluations(ledger, mu, sigma, bookkeeperPeriodS);
        ledger.setEvaluations(address(evaluations));
    }
}

import {PricingAuction} from "../../../contracts/PricingAuction.sol";

/// @dev The PricingAuction constructor parameters (DESIGN §4.4), named so tests read which one they vary.
struct AuctionParameters {
    uint256 bidBondWei;
    uint256 minDepositWei;
    uint16 convergenceBps;
    uint8 maxBidders;
    uint32 decisionSeconds;
}

/**
 * @dev Deploys Registry, ChargingLedger and Evaluations as EvaluationsDeployment does, then a PricingAuction on them,
 * wired into the ledger (so `openAuctionSession` accepts its decisions) unless `wire` is false.
 */
library AuctionDeployment {
    function deploy(AuctionParameters memory p, bool wire)
        internal
        returns (Registry registry, ChargingLedger ledger, Evaluations evaluations, PricingAuction auction)
    {
        (registry, ledger, evaluations) = EvaluationsDeployment.deploy();
        auction = new PricingAuction(
            registry, ledger, evaluations, p.bidBondWei, p.minDepositWei, p.convergenceBps, p.maxBidders, p.decisionSeconds
        );
        if (wire) ledger.setPricingAuction(auction);
    }
}
