#!/usr/bin/env node
// The agent is written in TypeScript and run through tsx's loader, so the pile needs no build step.
import { register } from "tsx/esm/api";

register();
await import("../agent/cli/main.ts");
