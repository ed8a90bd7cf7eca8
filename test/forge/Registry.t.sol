// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Registry} from "../../contracts/Registry.sol";
import {Test} from "./helpers/Test.sol";

/// @dev Access control and price bounds of Registry (DESIGN §4.1).
contract RegistryTest is Test {
    uint256 internal constant START = 1_700_000_000;
    uint8 internal constant ROLE_EV = 1;
    uint8 internal constant ROLE_OWNER = 2;
    uint8 internal constant ROLE_OPERATOR = 3;
    uint256 internal constant MAX_PRICE = type(uint80).max;

    bytes32 internal constant CP_ID = keccak256("cp-1");
    uint256 internal constant PRICE_WEI_PER_KWH = 300_000_000_000_000;
    bytes internal constant SEALED = hex"5ea1ed";

    Registry internal registry;
    address internal authority = address(0xA07);
    address internal owner = address(0x0A);
    address internal operator = address(0x0B);
    address internal ev = address(0xE1);
    address internal signer = address(0x51);
    address internal stranger = address(0xBAD);

    function setUp() public {
        vm.warp(START);
        registry = new Registry(authority);
        vm.startPrank(authority);
        registry.attest(owner, ROLE_OWNER, uint64(START + 30 days));
        registry.attest(operator, ROLE_OPERATOR, uint64(START + 30 days));
        registry.attest(ev, ROLE_EV, uint64(START + 30 days));
        vm.stopPrank();
    }

    function _register(address caller, bytes32 cpId, Registry.CpKind kind, uint256 price) internal {
        vm.prank(caller);
        registry.registerChargePoint(cpId, kind, 7, signer, price, 11_000, SEALED);
    }

    // ================================================================ identities

    function test_constructor_zeroAuthorityMeansDeployer() public {
        Registry own = new Registry(address(0));
        assertEq(own.authority(), address(this), "authority defaults to the deployer");
        assertEq(registry.authority(), authority, "explicit authority");
    }

    function test_attest_onlyByTheAuthority() public {
        vm.expectRevert(abi.encodeWithSelector(Registry.NotAuthority.selector, stranger));
        vm.prank(stranger);
        registry.attest(stranger, ROLE_OWNER, uint64(START + 1));

        vm.expectRevert(abi.encodeWithSelector(Registry.NotAuthority.selector, owner));
        vm.prank(owner);
        registry.attest(stranger, ROLE_OWNER, uint64(START + 1));
    }

    function test_attest_rejectsUnknownRoles() public {
        vm.startPrank(authority);
        vm.expectRevert(abi.encodeWithSelector(Registry.InvalidRole.selector, 0));
        registry.attest(stranger, 0, uint64(START + 1));
        vm.expectRevert(abi.encodeWithSelector(Registry.InvalidRole.selector, 4));
        registry.attest(stranger, 4, uint64(START + 1));
        vm.stopPrank();
    }

    function test_attest_validUntilIsExclusiveAndZeroRevokes() public {
        vm.expectEmit(address(registry));
        emit Registry.Attested(stranger, ROLE_EV, uint64(START + 10));
        vm.prank(authority);
        registry.attest(stranger, ROLE_EV, uint64(START + 10));
        assertEq(uint256(registry.attestedUntil(stranger, ROLE_EV)), START + 10, "attested until");

        vm.warp(START + 9);
        assertTrue(registry.isAttested(stranger, ROLE_EV), "valid one second before");
        vm.warp(START + 10);
        assertTrue(!registry.isAttested(stranger, ROLE_EV), "expired at validUntil");
        assertTrue(!registry.isAttested(stranger, ROLE_OWNER), "roles are separate");

        vm.prank(authority);
        registry.attest(ev, ROLE_EV, 0);
        assertTrue(!registry.isAttested(ev, ROLE_EV), "revoked");
    }

    // ================================================================ registering

    function test_register_recordsTheChargePoint() public {
        vm.expectEmit(address(registry));
        emit Registry.ChargePointRegistered(CP_ID, owner, Registry.CpKind.Private, 7, signer);
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);

        (
            address cpOwner,
            Registry.CpKind kind,
            uint64 areaId,
            address cpSigner,
            uint256 price,
            uint32 maxPowerW,
            bool active,
            bytes memory sealedContact
        ) = registry.chargePoint(CP_ID);
        assertEq(cpOwner, owner, "owner");
        assertEq(uint256(kind), uint256(Registry.CpKind.Private), "kind");
        assertEq(uint256(areaId), 7, "area");
        assertEq(cpSigner, signer, "signer");
        assertEq(price, PRICE_WEI_PER_KWH, "price");
        assertEq(uint256(maxPowerW), 11_000, "max power");
        assertTrue(active, "active");
        assertEq(sealedContact, SEALED, "sealed contact");
        assertEq(uint256(registry.chargePointCount()), 1, "count");

        (uint32 cpNo, uint256 termsPrice, bool termsActive) = registry.sessionTerms(CP_ID);
        assertEq(uint256(cpNo), 1, "cp number");
        assertEq(termsPrice, PRICE_WEI_PER_KWH, "terms price");
        assertTrue(termsActive, "terms active");
        (bytes32 cpId, address partyOwner, address partySigner) = registry.parties(1);
        assertEq(cpId, CP_ID, "parties cp");
        assertEq(partyOwner, owner, "parties owner");
        assertEq(partySigner, signer, "parties signer");
        assertEq(uint256(registry.cpNoOf(CP_ID)), 1, "cpNoOf");
    }

    function test_register_needsTheRoleOfItsKind() public {
        vm.expectRevert(abi.encodeWithSelector(Registry.NotAttested.selector, stranger, ROLE_OWNER));
        _register(stranger, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);
        vm.expectRevert(abi.encodeWithSelector(Registry.NotAttested.selector, ev, ROLE_OWNER));
        _register(ev, CP_ID, Registry.CpKind.Public, PRICE_WEI_PER_KWH);
        // An owner is not an operator, and an operator is not an owner.
        vm.expectRevert(abi.encodeWithSelector(Registry.NotAttested.selector, owner, ROLE_OPERATOR));
        _register(owner, CP_ID, Registry.CpKind.Operator, PRICE_WEI_PER_KWH);
        vm.expectRevert(abi.encodeWithSelector(Registry.NotAttested.selector, operator, ROLE_OWNER));
        _register(operator, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);

        _register(operator, CP_ID, Registry.CpKind.Operator, PRICE_WEI_PER_KWH);
        (address cpOwner,,,,,,,) = registry.chargePoint(CP_ID);
        assertEq(cpOwner, operator, "operator pile");
    }

    function test_register_expiredAttestationRefused() public {
        vm.warp(START + 30 days);
        vm.expectRevert(abi.encodeWithSelector(Registry.NotAttested.selector, owner, ROLE_OWNER));
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);
    }

    function test_register_rejectsDuplicatesAndBadFields() public {
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);
        vm.expectRevert(abi.encodeWithSelector(Registry.ChargePointAlreadyRegistered.selector, CP_ID));
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);

        bytes32 cp2 = keccak256("cp-2");
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(Registry.ZeroSigner.selector));
        registry.registerChargePoint(cp2, Registry.CpKind.Private, 7, address(0), PRICE_WEI_PER_KWH, 11_000, SEALED);
        vm.expectRevert(abi.encodeWithSelector(Registry.InvalidMaxPower.selector, 0));
        registry.registerChargePoint(cp2, Registry.CpKind.Private, 7, signer, PRICE_WEI_PER_KWH, 0, SEALED);
        vm.expectRevert(abi.encodeWithSelector(Registry.EmptySealedContact.selector));
        registry.registerChargePoint(cp2, Registry.CpKind.Private, 7, signer, PRICE_WEI_PER_KWH, 11_000, "");
        vm.stopPrank();
        assertEq(uint256(registry.chargePointCount()), 1, "nothing registered");
    }

    // ================================================================ price bounds

    function test_price_zeroAndAboveUint80Refused() public {
        vm.expectRevert(abi.encodeWithSelector(Registry.InvalidPrice.selector, 0, MAX_PRICE));
        _register(owner, CP_ID, Registry.CpKind.Private, 0);
        vm.expectRevert(abi.encodeWithSelector(Registry.InvalidPrice.selector, MAX_PRICE + 1, MAX_PRICE));
        _register(owner, CP_ID, Registry.CpKind.Private, MAX_PRICE + 1);

        _register(owner, CP_ID, Registry.CpKind.Private, MAX_PRICE);
        (,,,, uint256 price,,,) = registry.chargePoint(CP_ID);
        assertEq(price, MAX_PRICE, "the cap itself is allowed");
        assertEq(registry.MAX_PRICE_PER_KWH(), MAX_PRICE, "cap constant");

        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(Registry.InvalidPrice.selector, 0, MAX_PRICE));
        registry.setPrice(CP_ID, 0);
        vm.expectRevert(abi.encodeWithSelector(Registry.InvalidPrice.selector, MAX_PRICE + 1, MAX_PRICE));
        registry.setPrice(CP_ID, MAX_PRICE + 1);
        registry.setPrice(CP_ID, 1);
        vm.stopPrank();
        (,,,, price,,,) = registry.chargePoint(CP_ID);
        assertEq(price, 1, "lowest price");
    }

    /// @dev Every price in [1, 2^80 - 1] is stored exactly (no silent truncation into the 80-bit field); others revert.
    function testFuzz_setPrice_bounds(uint256 price) public {
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);
        if (price == 0 || price > MAX_PRICE) {
            vm.expectRevert(abi.encodeWithSelector(Registry.InvalidPrice.selector, price, MAX_PRICE));
            vm.prank(owner);
            registry.setPrice(CP_ID, price);
            return;
        }
        vm.expectEmit(address(registry));
        emit Registry.PriceChanged(CP_ID, price);
        vm.prank(owner);
        registry.setPrice(CP_ID, price);
        (, uint256 termsPrice,) = registry.sessionTerms(CP_ID);
        assertEq(termsPrice, price, "stored price");
    }

    // ================================================================ owner-only changes

    function test_ownerOnly_setSignerPriceActive() public {
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);
        vm.startPrank(signer); // the pile's own key is not its owner
        vm.expectRevert(abi.encodeWithSelector(Registry.NotChargePointOwner.selector, CP_ID, signer));
        registry.setSigner(CP_ID, stranger);
        vm.expectRevert(abi.encodeWithSelector(Registry.NotChargePointOwner.selector, CP_ID, signer));
        registry.setPrice(CP_ID, 1);
        vm.expectRevert(abi.encodeWithSelector(Registry.NotChargePointOwner.selector, CP_ID, signer));
        registry.setActive(CP_ID, false);
        vm.stopPrank();

        bytes32 unknown = keccak256("nope");
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(Registry.UnknownChargePoint.selector, unknown));
        registry.setSigner(unknown, stranger);
        vm.expectRevert(abi.encodeWithSelector(Registry.ZeroSigner.selector));
        registry.setSigner(CP_ID, address(0));

        vm.expectEmit(address(registry));
        emit Registry.SignerChanged(CP_ID, stranger);
        registry.setSigner(CP_ID, stranger);
        vm.expectEmit(address(registry));
        emit Registry.ActiveChanged(CP_ID, false);
        registry.setActive(CP_ID, false);
        vm.stopPrank();

        (,, address newSigner) = registry.parties(1);
        assertEq(newSigner, stranger, "signer rotated");
        (,, bool active) = registry.sessionTerms(CP_ID);
        assertTrue(!active, "deactivated");
    }

    function test_authorizerCheck_signerOrOwnerOnly() public {
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);
        (bytes32 cpId, bool bySigner) = registry.authorizerCheck(1, signer);
        (, bool byOwner) = registry.authorizerCheck(1, owner);
        (, bool byStranger) = registry.authorizerCheck(1, stranger);
        assertEq(cpId, CP_ID, "cp");
        assertTrue(bySigner, "signer may authorize");
        assertTrue(byOwner, "owner may authorize");
        assertTrue(!byStranger, "stranger may not");
    }

    function test_views_unknownChargePoint() public {
        vm.expectRevert(abi.encodeWithSelector(Registry.UnknownChargePoint.selector, CP_ID));
        registry.chargePoint(CP_ID);
        (uint32 cpNo,,) = registry.sessionTerms(CP_ID);
        assertEq(uint256(cpNo), 0, "unknown cp has number 0");
    }

    // ================================================================ owner contact

    function test_contact_requestAndAnswerOnce() public {
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);
        bytes32 evKey = keccak256("ev x25519 key");

        vm.expectRevert(abi.encodeWithSelector(Registry.NotAttested.selector, stranger, ROLE_EV));
        vm.prank(stranger);
        registry.requestOwnerContact(CP_ID, evKey);
        vm.expectRevert(abi.encodeWithSelector(Registry.UnknownChargePoint.selector, keccak256("nope")));
        vm.prank(ev);
        registry.requestOwnerContact(keccak256("nope"), evKey);

        vm.expectEmit(address(registry));
        emit Registry.OwnerContactRequested(1, CP_ID, ev, evKey);
        vm.prank(ev);
        uint256 requestId = registry.requestOwnerContact(CP_ID, evKey);
        assertEq(requestId, 1, "request id");

        vm.expectRevert(abi.encodeWithSelector(Registry.NotChargePointResponder.selector, CP_ID, ev));
        vm.prank(ev);
        registry.answerOwnerContact(requestId, hex"01");
        vm.expectRevert(abi.encodeWithSelector(Registry.EmptySealedContact.selector));
        vm.prank(signer);
        registry.answerOwnerContact(requestId, "");
        vm.expectRevert(abi.encodeWithSelector(Registry.UnknownContactRequest.selector, 2));
        vm.prank(signer);
        registry.answerOwnerContact(2, hex"01");

        vm.expectEmit(address(registry));
        emit Registry.OwnerContactAnswered(requestId, hex"0102");
        vm.prank(signer);
        registry.answerOwnerContact(requestId, hex"0102");
        (bytes32 cpId, address requester, bool answered) = registry.contactRequest(requestId);
        assertEq(cpId, CP_ID, "request cp");
        assertEq(requester, ev, "request ev");
        assertTrue(answered, "answered");

        vm.expectRevert(abi.encodeWithSelector(Registry.ContactRequestAlreadyAnswered.selector, requestId));
        vm.prank(owner);
        registry.answerOwnerContact(requestId, hex"01");
    }

    function test_contact_ownerMayAnswer() public {
        _register(owner, CP_ID, Registry.CpKind.Private, PRICE_WEI_PER_KWH);
        vm.prank(ev);
        uint256 requestId = registry.requestOwnerContact(CP_ID, bytes32(0));
        vm.prank(owner);
        registry.answerOwnerContact(requestId, hex"01");
        (,, bool answered) = registry.contactRequest(requestId);
        assertTrue(answered, "answered by the owner");
    }
}
