/**
 * Permission rules for the files that hold the pile's secrets (device keystore, its password file, a raw private key
 * file) and for the config that names them. Pure judgements on mode bits, plus the one reader that applies them.
 * docs/SECURITY.md ("Device key files") gives the reasons an installer and an auditor need.
 *
 * Mode bits are checked, not whether a read as another user would fail: root reads anything, so only the bits say
 * who else could.
 */
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, realpathSync, statSync } from "node:fs";
import { RuntimeError, UsageError, describeError } from "../errors.ts";

/**
 * What the permission bits of a file holding a secret allow (docs/SECURITY.md, "Device key files"):
 * - refuse when other users have any access, or when the group can write: another local account could take the key
 *   (read) or swap it for one it controls (write), and the fix is one chmod;
 * - warn when only the group can read: installers use a dedicated service group (root:trustpile 0640, as
 *   systemd/install.sh does for the config), so this is often deliberate, but it widens who holds the key.
 */
export type SecretFileVerdict =
  | { verdict: "accept" }
  | { verdict: "warn"; problem: string }
  | { verdict: "refuse"; problem: string };

/** Pure rule on the low 9 mode bits; see `SecretFileVerdict`. */
export function judgeSecretFileMode(modeBits: number): SecretFileVerdict {
  const problems: string[] = [];
  const byOthers = [(modeBits & 0o004) !== 0 ? "readable" : "", (modeBits & 0o002) !== 0 ? "writable" : ""].filter(Boolean);
  if (byOthers.length > 0) problems.push(`${byOthers.join(" and ")} by other users`);
  // Execute alone leaks nothing today, but a key file has no reason to carry it: it is one chmod from o+r.
  else if ((modeBits & 0o001) !== 0) problems.push("accessible by other users");
  if ((modeBits & 0o020) !== 0) problems.push("writable by its group");
  if (problems.length > 0) return { verdict: "refuse", problem: problems.join(" and ") };
  if ((modeBits & 0o040) !== 0) return { verdict: "warn", problem: "readable by its group" };
  if ((modeBits & 0o010) !== 0) return { verdict: "warn", problem: "accessible by its group" };
  return { verdict: "accept" };
}

function octal(modeBits: number): string {
  return `0${modeBits.toString(8).padStart(3, "0")}`;
}

export interface SecretFileText {
  text: string;
  permissionWarning: string | undefined;
}

/**
 * Reads a file holding a secret after checking its mode. The mode is taken from the open descriptor (fstat), so
 * the file checked is the file read even if the path is swapped in between. A symlink is followed, because
 * secret stores (Kubernetes secret volumes, configuration managers) deliver keys as links; the check applies to
 * the target, which the message then names. A refused file is never read, so its secret never reaches memory or a
 * message. `what` names the file's role in messages ("keystore", "password file", "private key file").
 */
export function readSecretFile(path: string, what: string): SecretFileText {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    if (errnoCode(error) === "ENOENT") throw missingSecretFile(path, what, error);
    throw new RuntimeError(`cannot read ${what} ${path}: ${describeError(error)}`, { cause: error });
  }
  try {
    const stats = fstatSync(fd);
    if (stats.isDirectory()) throw new UsageError(`${what} ${path} is a directory; expected a file`);
    const judged = secretFileModeMessage(path, what, stats.mode & 0o777);
    if (judged.verdict === "refuse") throw new UsageError(judged.message);
    const permissionWarning = judged.verdict === "warn" ? judged.message : undefined;
    return { text: readFileSync(fd, "utf8"), permissionWarning };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new RuntimeError(`cannot read ${what} ${path}: ${describeError(error)}`, { cause: error });
  } finally {
    closeSync(fd);
  }
}

export type SecretFileJudgement = { verdict: "accept" } | { verdict: "warn" | "refuse"; message: string };

/** `judgeSecretFileMode` as the one sentence the CLI prints: the file, its mode, and the chmod that fixes it. */
export function secretFileModeMessage(path: string, what: string, modeBits: number): SecretFileJudgement {
  const judged = judgeSecretFileMode(modeBits);
  if (judged.verdict === "accept") return judged;
  const where = `${what} ${path}${symlinkNote(path)} is ${judged.problem} (mode ${octal(modeBits)})`;
  return judged.verdict === "refuse"
    ? { verdict: "refuse", message: `${where}; refusing to use it until you run: chmod 600 ${path}` }
    : {
        verdict: "warn",
        message: `${where}; fine if only the trustpile service is in that group, otherwise run: chmod 600 ${path}`,
      };
}

/** The mode judgement of a secret file without reading it (selftest); a missing file is a usage error. */
export function checkSecretFileMode(path: string, what: string): SecretFileJudgement {
  let modeBits: number;
  try {
    modeBits = statSync(path).mode & 0o777;
  } catch (error) {
    if (errnoCode(error) === "ENOENT") throw missingSecretFile(path, what, error);
    throw new RuntimeError(`cannot read ${what} ${path}: ${describeError(error)}`, { cause: error });
  }
  return secretFileModeMessage(path, what, modeBits);
}

export function missingSecretFile(path: string, what: string, cause: unknown): UsageError {
  const hint = what === "keystore" ? ` (create one with: trustpile keys new --keystore ${path})` : "";
  return new UsageError(`${what} ${path} does not exist${hint}`, { cause });
}

/** " (a symlink to TARGET)" when `path` is a link, so the installer knows which file the mode belongs to. */
function symlinkNote(path: string): string {
  try {
    return lstatSync(path).isSymbolicLink() ? ` (a symlink to ${realpathSync(path)})` : "";
  } catch {
    return "";
  }
}

export function errnoCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    return error.code;
  }
  return undefined;
}

/**
 * The config names the keystore, the RPC endpoint the pile trusts for deposits, and the meter: whoever can write it
 * can make the pile believe a lying RPC, so other users must not be able to write it (refuse). Being readable by
 * them only matters for the credentials it may hold (`ocpp.password`, `mqtt.password`): those let someone pose as
 * the pile to its CSMS or broker but move no money and close no relay, so that is a warning. A config holding
 * neither may be world-readable, as most of /etc is. Group-writable is accepted: with user-private groups (umask
 * 002) an editor leaves files g+w, and the group is the owner's own.
 */
export function judgeConfigFileMode(modeBits: number, passwordKeys: readonly string[]): SecretFileVerdict {
  if ((modeBits & 0o002) !== 0) return { verdict: "refuse", problem: "writable by other users" };
  if ((modeBits & 0o004) !== 0 && passwordKeys.length > 0) {
    return { verdict: "warn", problem: `readable by other users and holds ${passwordKeys.join(" and ")}` };
  }
  return { verdict: "accept" };
}

/**
 * Applies `judgeConfigFileMode` to the config at `path`: throws on refusal, returns one warning sentence or
 * undefined. `passwordKeys` are the credential keys the file itself sets (not ones given by environment).
 */
export function checkConfigFileMode(path: string, passwordKeys: readonly string[]): string | undefined {
  let modeBits: number;
  try {
    modeBits = statSync(path).mode & 0o777;
  } catch (error) {
    throw new RuntimeError(`cannot read config ${path}: ${describeError(error)}`, { cause: error });
  }
  const judged = judgeConfigFileMode(modeBits, passwordKeys);
  const where = `config ${path}${symlinkNote(path)}`;
  if (judged.verdict === "refuse") {
    throw new UsageError(
      `${where} is ${judged.problem} (mode ${octal(modeBits)}), so they could point the pile at another chain or key; refusing to start until you run: chmod 640 ${path}`,
    );
  }
  if (judged.verdict === "warn") return `${where} is ${judged.problem} (mode ${octal(modeBits)}); run: chmod 640 ${path}`;
  return undefined;
}
