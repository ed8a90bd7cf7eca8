import { describe, expect, it } from "vitest";
import { Conversation, type CsmsMessage } from "../../../../hw-sim/csms/conversation.ts";

const call = (messageId: string, action: string, identity = "cp-1"): CsmsMessage => ({
  atMs: 1_000,
  identity,
  protocol: "ocpp1.6",
  from: "pile",
  messageId,
  action,
  payload: {},
  reply: undefined,
});

describe("Conversation", () => {
  it("keeps calls in order, completes them with their answer, and filters by charge point", () => {
    const conversation = new Conversation();
    conversation.add(call("m1", "BootNotification"));
    conversation.add(call("m2", "Heartbeat", "cp-2"));
    const answered = conversation.answer("cp-1", "m1", { kind: "result", payload: { status: "Accepted" } });
    expect(answered?.reply).toEqual({ kind: "result", payload: { status: "Accepted" } });
    expect(conversation.messages("cp-1")).toEqual([{ ...call("m1", "BootNotification"), reply: { kind: "result", payload: { status: "Accepted" } } }]);
    expect(conversation.messages().map((m) => [m.identity, m.action, m.reply?.kind])).toEqual([
      ["cp-1", "BootNotification", "result"],
      ["cp-2", "Heartbeat", undefined],
    ]);
  });

  it("ignores a second answer to the same call and an answer for another charge point's message id", () => {
    const conversation = new Conversation();
    conversation.add(call("m1", "Heartbeat"));
    expect(conversation.answer("cp-2", "m1", { kind: "result", payload: {} })).toBeUndefined();
    conversation.answer("cp-1", "m1", { kind: "result", payload: { currentTime: "a" } });
    expect(conversation.answer("cp-1", "m1", { kind: "result", payload: { currentTime: "b" } })).toBeUndefined();
    expect(conversation.messages()[0]?.reply).toEqual({ kind: "result", payload: { currentTime: "a" } });
  });

  it("returns a copy whose records cannot be changed", () => {
    const conversation = new Conversation();
    conversation.add(call("m1", "Heartbeat"));
    const copy = conversation.messages();
    copy.pop();
    expect(conversation.messages()).toHaveLength(1);
    expect(() => {
      (conversation.messages()[0] as { action: string }).action = "Other";
    }).toThrow(TypeError);
  });

  it("waitFor resolves on a recorded message at once, on a later one, or when a call gets its answer", async () => {
    const conversation = new Conversation();
    conversation.add(call("m1", "BootNotification"));
    await expect(conversation.waitFor((m) => m.action === "BootNotification", 10)).resolves.toMatchObject({ messageId: "m1" });

    const later = conversation.waitFor((m) => m.action === "Heartbeat", 1_000);
    conversation.add(call("m2", "Heartbeat"));
    await expect(later).resolves.toMatchObject({ messageId: "m2", reply: undefined });

    const answeredBoot = conversation.waitFor((m) => m.action === "BootNotification" && m.reply !== undefined, 1_000);
    conversation.answer("cp-1", "m1", { kind: "error", code: "GenericError", description: "", details: {} });
    await expect(answeredBoot).resolves.toMatchObject({ messageId: "m1", reply: { kind: "error", code: "GenericError" } });
  });

  it("waitFor rejects after its timeout naming what it saw, and on a bad timeout", async () => {
    const conversation = new Conversation();
    conversation.add({ ...call("m1", "Reset"), from: "csms" });
    await expect(conversation.waitFor(() => false, 20)).rejects.toThrow(
      "waitFor: no matching OCPP message within 20 ms (seen: -> cp-1 Reset)",
    );
    await expect(conversation.waitFor(() => true, -1)).rejects.toThrow("waitFor: expected timeoutMs >= 0, got -1");
  });
});
