import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { KEEP_FINISHED_AUCTIONS } from "../../../../agent/bidder/bidder.ts";
import { openJournal } from "../../../../agent/journal/journal.ts";

describe("journal auction bids", () => {
  const dir = mkdtempSync(join(tmpdir(), "trustpile-bid-journal-"));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps a sealed bid across a reopen, bigints intact, and lists only active invitations in id order", () => {
    const path = join(dir, "journal.sqlite");
    const sealed = { round: 2, priceWeiPerKWh: 230_000_000_000_000n, powerW: 11_000, salt: "0x" + "11".repeat(32) };
    let journal = openJournal(path, { clock: () => 1_000 });
    journal.saveAuctionBid(10n, "active", { sealed });
    journal.saveAuctionBid(9n, "active", { sealed: { ...sealed, round: 1 } });
    journal.saveAuctionBid(2n ** 200n, "finished", { sealed });
    journal.close();

    journal = openJournal(path);
    expect(journal.auctionBid(10n)).toEqual({ invitationId: 10n, status: "active", entry: { sealed }, updatedAt: 1_000 });
    expect(journal.auctionBid(2n ** 200n)?.status).toBe("finished");
    expect(journal.auctionBid(11n)).toBeUndefined();
    expect(journal.activeAuctionBids().map((row) => row.invitationId)).toEqual([9n, 10n]);
    journal.saveAuctionBid(9n, "finished", { sealed });
    expect(journal.activeAuctionBids().map((row) => row.invitationId)).toEqual([10n]);
    journal.close();
  });

  it("writes the sealed bid and its outbox row together or not at all", () => {
    const journal = openJournal(join(dir, "atomic.sqlite"));
    expect(() =>
      journal.transaction(() => {
        journal.saveAuctionBid(5n, "active", { round: 1 });
        journal.enqueue({ key: "commitBid:5:1", kind: "commitBid", payload: {} });
        throw new Error("crash between the two writes");
      }),
    ).toThrow("crash between the two writes");
    expect(journal.auctionBid(5n)).toBeUndefined();
    expect(journal.get("commitBid:5:1")).toBeUndefined();
    journal.close();
  });

  it("prunes finished invitations beyond the newest by invitation id, never an active one", () => {
    const journal = openJournal(join(dir, "prune.sqlite"), { clock: () => 5_000 });
    // Ids whose text order differs from their numeric order, and a uint256 one.
    for (const id of [9n, 10n, 99n, 100n, 2n ** 200n]) journal.saveAuctionBid(id, "finished", { id });
    journal.saveAuctionBid(1n, "active", { id: 1n });
    expect(journal.pruneFinishedAuctionBids(3)).toBe(2);
    expect([9n, 10n, 99n, 100n, 2n ** 200n, 1n].map((id) => journal.auctionBid(id)?.status)).toEqual([undefined, undefined, "finished", "finished", "finished", "active"]);
    expect(journal.pruneFinishedAuctionBids(3)).toBe(0);
    expect(journal.pruneFinishedAuctionBids(0)).toBe(3);
    expect(journal.activeAuctionBids().map((row) => row.invitationId)).toEqual([1n]);
    expect(() => journal.pruneFinishedAuctionBids(-1)).toThrow(/finished auction bids to keep must be an integer >= 0, got -1/);
    journal.close();
  });

  it("stays bounded over 3,000 auctions finished the way the bidder finishes them, keeping those still in progress", () => {
    const journal = openJournal(join(dir, "bounded.sqlite"), { synchronous: "normal" });
    const sealed = { round: 1, priceWeiPerKWh: 230_000_000_000_000n, powerW: 11_000, salt: "0x" + "22".repeat(32) };
    const counts: number[] = [];
    for (let id = 1n; id <= 3_000n; id++) {
      journal.saveAuctionBid(id, "active", { invitationId: id, sealed });
      // Every 100th auction is still waiting for its bond when the later ones finish.
      if (id % 100n === 0n) continue;
      journal.transaction(() => {
        journal.saveAuctionBid(id, "finished", { invitationId: id, sealed, withdrawn: true });
        journal.pruneFinishedAuctionBids(KEEP_FINISHED_AUCTIONS);
      });
      if (id % 1_000n === 999n) counts.push(journal.stats().rows.auction_bids);
    }
    // KEEP_FINISHED_AUCTIONS finished rows plus the active ones so far (9, 19 and 29 of them).
    expect(counts).toEqual([KEEP_FINISHED_AUCTIONS + 9, KEEP_FINISHED_AUCTIONS + 19, KEEP_FINISHED_AUCTIONS + 29]);
    expect(journal.activeAuctionBids()).toHaveLength(30);
    expect(journal.auctionBid(100n)?.entry).toEqual({ invitationId: 100n, sealed });
    expect(journal.auctionBid(2_999n)?.status).toBe("finished");
    // The newest 100 finished: 2,901 … 2,999 (99 of them) and 2,899; 2,900 is the one still active.
    expect(KEEP_FINISHED_AUCTIONS).toBe(100);
    expect(journal.auctionBid(2_899n)?.status).toBe("finished");
    expect(journal.auctionBid(2_898n)).toBeUndefined();
    expect(journal.auctionBid(1n)).toBeUndefined();
    journal.close();
  });
});
