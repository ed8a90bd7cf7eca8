// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @dev Identities and charge points (paper §3.1). The identity authority attests accounts for roles (EV, pile
 * owner, operator) with an expiry; attested owners register their charge points with the pile's device key as
 * signer, the listed price, and the owner's contact sealed (X25519 + AES-256-GCM, off chain) so the platform never
 * shows who owns a private pile. An EV asks for the contact on chain and the pile answers by sealing it to the EV's key.
 *
 * This contract alone knows who speaks for a charge point. ChargingLedger reads it through the compact views at
 * the end, keyed by a 32-bit charge point number so a session keeps its charge point in four bytes, not thirty-two.
 *
 * NOTE: prices are capped at 2^80 - 1 wei per kWh (about 1.2 million ether) because the ledger packs the price into
 * a session's second storage slot.
 */
contract Registry {
    enum CpKind {
        Private,
        Public,
        Operator
    }

    uint8 public constant ROLE_EV = 1;
    uint8 public constant ROLE_OWNER = 2;
    uint8 public constant ROLE_OPERATOR = 3;

    uint256 public constant MAX_PRICE_PER_KWH = type(uint80).max;

    /// @dev Two of the three slots are what a session needs: slot 0 when it opens, slots 1 and 2 when it settles.
    struct ChargePointRecord {
        // slot 0
        address owner;
        CpKind kind;
        bool active;
        uint80 pricePerKWh;
        // slot 1
        address signer;
        uint64 areaId;
        uint32 maxPowerW;
        // slot 2
        bytes32 cpId;
        // slot 3..
        bytes ownerContactSealed;
    }

    struct ContactRequest {
        bytes32 cpId;
        address ev;
        bool answered;
    }

    address private immutable _authority;

    mapping(address account => mapping(uint8 role => uint64 validUntil)) private _attestations;
    mapping(bytes32 cpId => uint32 cpNo) private _cpNoOf;
    mapping(uint32 cpNo => ChargePointRecord) private _chargePoints;
    uint32 private _chargePointCount;

    mapping(uint256 requestId => ContactRequest) private _contactRequests;
    uint256 private _contactRequestCount;

    event Attested(address indexed who, uint8 indexed role, uint64 validUntil);
    event ChargePointRegistered(bytes32 indexed cpId, address indexed owner, CpKind kind, uint64 areaId, address signer);
    event SignerChanged(bytes32 indexed cpId, address signer);
    event PriceChanged(bytes32 indexed cpId, uint256 pricePerKWh);
    event ActiveChanged(bytes32 indexed cpId, bool active);
    event OwnerContactRequested(uint256 indexed requestId, bytes32 indexed cpId, address indexed ev, bytes32 evEncPubKey);
    event OwnerContactAnswered(uint256 indexed requestId, bytes sealedContact);

    error NotAuthority(address caller);
    error InvalidRole(uint8 role);
    error NotAttested(address account, uint8 role);
    error ChargePointAlreadyRegistered(bytes32 cpId);
    error UnknownChargePoint(bytes32 cpId);
    error NotChargePointOwner(bytes32 cpId, address caller);
    error ZeroSigner();
    error InvalidPrice(uint256 pricePerKWh, uint256 maxPricePerKWh);
    error InvalidMaxPower(uint32 maxPowerW);
    error EmptySealedContact();
    error UnknownContactRequest(uint256 requestId);
    error ContactRequestAlreadyAnswered(uint256 requestId);
    error NotChargePointResponder(bytes32 cpId, address caller);

    constructor(address authority_) {
        _authority = authority_ == address(0) ? msg.sender : authority_;
    }

    function authority() external view returns (address) {
        return _authority;
    }

    // ---------------------------------------------------------------- identities

    /// @notice Attests `who` for `role` until `validUntil` (unix seconds); 0 revokes. One account may hold several roles.
    function attest(address who, uint8 role, uint64 validUntil) external {
        if (msg.sender != _authority) revert NotAuthority(msg.sender);
        if (role < ROLE_EV || role > ROLE_OPERATOR) revert InvalidRole(role);
        _attestations[who][role] = validUntil;
        emit Attested(who, role, validUntil);
    }

    function isAttested(address who, uint8 role) public view returns (bool) {
        return _attestations[who][role] > block.timestamp;
    }

    function attestedUntil(address who, uint8 role) external view returns (uint64) {
        return _attestations[who][role];
    }

    // ---------------------------------------------------------------- charge points

    /**
     * @notice Registers a charge point owned by the caller. Private and public piles need an attested owner,
     * operator piles an attested operator.
     */
    function registerChargePoint(
        bytes32 cpId,
        CpKind kind,
        uint64 areaId,
        address signer,
        uint256 pricePerKWh,
        uint32 maxPowerW,
        bytes calldata ownerContactSealed
    ) external {
        uint8 role = kind == CpKind.Operator ? ROLE_OPERATOR : ROLE_OWNER;
        if (!isAttested(msg.sender, role)) revert NotAttested(msg.sender, role);
        if (_cpNoOf[cpId] != 0) revert ChargePointAlreadyRegistered(cpId);
        if (signer == address(0)) revert ZeroSigner();
        _checkPrice(pricePerKWh);
        if (maxPowerW == 0) revert InvalidMaxPower(maxPowerW);
        if (ownerContactSealed.length == 0) revert EmptySealedContact();

        uint32 cpNo = ++_chargePointCount;
        _cpNoOf[cpId] = cpNo;
        ChargePointRecord storage cp = _chargePoints[cpNo];
        cp.owner = msg.sender;
        cp.kind = kind;
        cp.active = true;
        cp.pricePerKWh = uint80(pricePerKWh);
        cp.signer = signer;
        cp.areaId = areaId;
        cp.maxPowerW = maxPowerW;
        cp.cpId = cpId;
        cp.ownerContactSealed = ownerContactSealed;
        emit ChargePointRegistered(cpId, msg.sender, kind, areaId, signer);
    }

    function setSigner(bytes32 cpId, address signer) external {
        ChargePointRecord storage cp = _ownedChargePoint(cpId);
        if (signer == address(0)) revert ZeroSigner();
        cp.signer = signer;
        emit SignerChanged(cpId, signer);
    }

    function setPrice(bytes32 cpId, uint256 pricePerKWh) external {
        ChargePointRecord storage cp = _ownedChargePoint(cpId);
        _checkPrice(pricePerKWh);
        cp.pricePerKWh = uint80(pricePerKWh);
        emit PriceChanged(cpId, pricePerKWh);
    }

    function setActive(bytes32 cpId, bool active) external {
        ChargePointRecord storage cp = _ownedChargePoint(cpId);
        cp.active = active;
        emit ActiveChanged(cpId, active);
    }

    function chargePoint(bytes32 cpId)
        external
        view
        returns (
            address owner,
            CpKind kind,
            uint64 areaId,
            address signer,
            uint256 pricePerKWh,
            uint32 maxPowerW,
            bool active,
            bytes memory ownerContactSealed
        )
    {
        ChargePointRecord storage cp = _registered(cpId);
        return (cp.owner, cp.kind, cp.areaId, cp.signer, cp.pricePerKWh, cp.maxPowerW, cp.active, cp.ownerContactSealed);
    }

    function chargePointCount() external view returns (uint32) {
        return _chargePointCount;
    }

    // ---------------------------------------------------------------- owner contact (paper §3.1)

    function requestOwnerContact(bytes32 cpId, bytes32 evEncPubKey) external returns (uint256 requestId) {
        _registered(cpId);
        if (!isAttested(msg.sender, ROLE_EV)) revert NotAttested(msg.sender, ROLE_EV);
        requestId = ++_contactRequestCount;
        _contactRequests[requestId] = ContactRequest({cpId: cpId, ev: msg.sender, answered: false});
        emit OwnerContactRequested(requestId, cpId, msg.sender, evEncPubKey);
    }

    /// @notice The pile (its signer) or its owner answers with the contact sealed to the EV's key, once.
    function answerOwnerContact(uint256 requestId, bytes calldata sealedContact) external {
        ContactRequest storage request = _contactRequests[requestId];
        if (request.ev == address(0)) revert UnknownContactRequest(requestId);
        if (request.answered) revert ContactRequestAlreadyAnswered(requestId);
        ChargePointRecord storage cp = _chargePoints[_cpNoOf[request.cpId]];
        if (msg.sender != cp.signer && msg.sender != cp.owner) revert NotChargePointResponder(request.cpId, msg.sender);
        if (sealedContact.length == 0) revert EmptySealedContact();
        request.answered = true;
        emit OwnerContactAnswered(requestId, sealedContact);
    }

    function contactRequest(uint256 requestId) external view returns (bytes32 cpId, address ev, bool answered) {
        ContactRequest storage request = _contactRequests[requestId];
        return (request.cpId, request.ev, request.answered);
    }

    // ---------------------------------------------------------------- compact views for ChargingLedger

    /// @dev What opening a session needs, from one storage slot of the charge point.
    function sessionTerms(bytes32 cpId) external view returns (uint32 cpNo, uint256 pricePerKWh, bool active) {
        cpNo = _cpNoOf[cpId];
        ChargePointRecord storage cp = _chargePoints[cpNo];
        return (cpNo, cp.pricePerKWh, cp.active);
    }

    /// @dev Who may authorize and settle for charge point `cpNo`, and whom to pay.
    function parties(uint32 cpNo) external view returns (bytes32 cpId, address owner, address signer) {
        ChargePointRecord storage cp = _chargePoints[cpNo];
        return (cp.cpId, cp.owner, cp.signer);
    }

    /// @dev Whether `caller` may authorize sessions at `cpNo` (its signer or owner), and its cpId for the event.
    function authorizerCheck(uint32 cpNo, address caller) external view returns (bytes32 cpId, bool mayAuthorize) {
        ChargePointRecord storage cp = _chargePoints[cpNo];
        // The pile's signer authorizes nearly every session, so the owner's slot is read only when it is not the caller.
        mayAuthorize = caller == cp.signer || caller == cp.owner;
        cpId = cp.cpId;
    }

    /**
     * @dev What a bid in the pricing auction needs, from the charge point's first two slots: its number, area,
     * registered power, whether it is active and whether `caller` (its signer or owner) may bid for it.
     */
    function bidTerms(bytes32 cpId, address caller)
        external
        view
        returns (uint32 cpNo, uint64 areaId, uint32 maxPowerW, bool active, bool mayBid)
    {
        cpNo = _cpNoOf[cpId];
        ChargePointRecord storage cp = _chargePoints[cpNo];
        return (cpNo, cp.areaId, cp.maxPowerW, cp.active, cpNo != 0 && (caller == cp.signer || caller == cp.owner));
    }

    function cpNoOf(bytes32 cpId) external view returns (uint32) {
        return _cpNoOf[cpId];
    }

    /// @dev The area a charge point serves (0 for an unknown one), for the bookkeeper of that area.
    function areaOf(bytes32 cpId) external view returns (uint64) {
        return _chargePoints[_cpNoOf[cpId]].areaId;
    }

    // ---------------------------------------------------------------- internals

    function _registered(bytes32 cpId) private view returns (ChargePointRecord storage cp) {
        uint32 cpNo = _cpNoOf[cpId];
        if (cpNo == 0) revert UnknownChargePoint(cpId);
        return _chargePoints[cpNo];
    }

    function _ownedChargePoint(bytes32 cpId) private view returns (ChargePointRecord storage cp) {
        cp = _registered(cpId);
        if (cp.owner != msg.sender) revert NotChargePointOwner(cpId, msg.sender);
    }

    function _checkPrice(uint256 pricePerKWh) private pure {
        if (pricePerKWh == 0 || pricePerKWh > MAX_PRICE_PER_KWH) revert InvalidPrice(pricePerKWh, MAX_PRICE_PER_KWH);
    }
}
