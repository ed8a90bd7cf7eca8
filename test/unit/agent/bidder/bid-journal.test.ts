import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
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
});
