/** What the ledger charges for a settled session: ceil(energyWh × pricePerKWh / 1000) wei (ChargingLedger._costOf). */
export function costOf(energyWh: bigint, priceWeiPerKWh: bigint): bigint {
  const product = energyWh * priceWeiPerKWh;
  return product === 0n ? 0n : (product - 1n) / 1000n + 1n;
}
