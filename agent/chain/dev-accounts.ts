import { HDNodeWallet, Mnemonic, type Provider, type Wallet } from "ethers";
import { DEV_MNEMONIC } from "./dev-chain.ts";

/**
 * anvil's well-known accounts (DESIGN §5.1): account 0 deploys and is the identity authority, account 1 is the
 * default EV. Public keys of a public mnemonic: for dev chains only, never for real money.
 */
export function devAccount(index: number, provider?: Provider): HDNodeWallet {
  const wallet = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(DEV_MNEMONIC), `m/44'/60'/0'/0/${index}`);
  return provider ? wallet.connect(provider) : wallet;
}

export type DevOrWallet = HDNodeWallet | Wallet;
