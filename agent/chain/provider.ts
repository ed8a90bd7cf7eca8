import { JsonRpcProvider, Network, WebSocketProvider, type Provider } from "ethers";
import WebSocket from "ws";
import { RuntimeError, describeError } from "../errors.ts";

/**
 * A provider that never guesses: the network is fixed from one eth_chainId call made here with a deadline, so an
 * unreachable node fails fast with a clear sentence instead of ethers retrying network detection forever, and
 * block numbers are never served from a cache (cacheTimeout -1) because confirmations are counted from them.
 * Over HTTP the calls issued in one tick still leave as one JSON-RPC batch, but without ethers' default 10 ms
 * wait before each batch: a pointer walk (Algorithm 1) is a chain of dependent calls and would pay it per step.
 */
export async function connectProvider(rpcUrl: string, timeoutMs = 5_000): Promise<Provider> {
  const chainId = await fetchChainId(rpcUrl, timeoutMs);
  const network = Network.from(chainId);
  if (rpcUrl.startsWith("ws://") || rpcUrl.startsWith("wss://")) {
    return new WebSocketProvider(rpcUrl, network, { staticNetwork: network });
  }
  return new JsonRpcProvider(rpcUrl, network, {
    staticNetwork: network,
    cacheTimeout: -1,
    pollingInterval: 250,
    batchStallTime: 0,
  });
}

async function fetchChainId(rpcUrl: string, timeoutMs: number): Promise<bigint> {
  if (rpcUrl.startsWith("ws://") || rpcUrl.startsWith("wss://")) {
    return fetchChainIdOverWebSocket(rpcUrl, timeoutMs);
  }
  let response: Response;
  try {
    response = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new RuntimeError(`chain RPC ${rpcUrl} is unreachable: ${reason(error)}`, { cause: error });
  }
  return parseChainIdReply(rpcUrl, response.ok ? await response.text() : `HTTP ${response.status}`);
}

function fetchChainIdOverWebSocket(rpcUrl: string, timeoutMs: number): Promise<bigint> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(rpcUrl, { handshakeTimeout: timeoutMs });
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new RuntimeError(`chain RPC ${rpcUrl} is unreachable: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("open", () => socket.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] })));
    socket.once("message", (data) => {
      clearTimeout(timer);
      socket.close();
      try {
        resolve(parseChainIdReply(rpcUrl, data.toString()));
      } catch (error) {
        reject(error);
      }
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      socket.terminate();
      reject(new RuntimeError(`chain RPC ${rpcUrl} is unreachable: ${reason(error)}`, { cause: error }));
    });
  });
}

function parseChainIdReply(rpcUrl: string, body: string): bigint {
  try {
    const reply = JSON.parse(body) as { result?: unknown };
    if (typeof reply.result === "string") return BigInt(reply.result);
  } catch {
    // fall through to the error below
  }
  throw new RuntimeError(`chain RPC ${rpcUrl} did not answer eth_chainId like an Ethereum node: ${body.slice(0, 120)}`);
}

function reason(error: unknown): string {
  if (error instanceof Error && error.name === "TimeoutError") return "no answer within the timeout";
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined;
  return cause ?? describeError(error);
}
