/**
 * Every register table by name: the config's `meter.driver` picks one (DESIGN §5.2). A new meter is a new table
 * file and one line here.
 */
import type { MeterModel } from "../model.ts";
import { em340 } from "./em340.ts";
import { sdm120 } from "./sdm120.ts";
import { sdm630 } from "./sdm630.ts";

export const meterModels = Object.freeze({ sdm630, sdm120, em340 } satisfies Record<string, MeterModel>);

export type MeterModelName = keyof typeof meterModels;

export function isMeterModelName(name: string): name is MeterModelName {
  return Object.hasOwn(meterModels, name);
}

/** The table for `name`; an unknown name is a configuration error that lists the known ones. */
export function meterModel(name: string): MeterModel {
  if (isMeterModelName(name)) return meterModels[name];
  throw new Error(`unknown meter model "${name}", expected one of ${Object.keys(meterModels).join(", ")}`);
}
