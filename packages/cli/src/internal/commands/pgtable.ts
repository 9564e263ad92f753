//! `devref pgtable decode|dump <image>`: an I/O page table read back from a memory image.

import type { IoPgtableFormat } from "@devref/io-pgtable";
import { type Command, Option } from "commander";
import type { CliContext } from "../io.js";
import { addJson, collect } from "./common.js";

/** The formats `--format` takes (io-pgtable's `IO_PGTABLE_FORMATS`; a test keeps them equal). */
export const FORMATS: readonly IoPgtableFormat[] = [
  "arm-64-lpae-s1",
  "arm-64-lpae-s2",
  "apple-dart",
  "apple-dart2",
];

/** Adds `pgtable decode` and `pgtable dump` to the program; `done` receives the exit status. */
export function addPgtableCommands(
  program: Command,
  ctx: CliContext,
  done: (status: number) => void,
): void {
  const group = program
    .command("pgtable")
    .description("read an I/O page table back from a raw memory image (little-endian, as in RAM)");
  const about = {
    decode: "list the mappings of the table: input range, size, output address, permissions",
    dump: "print the table level by level: every table and leaf with its descriptor",
  } as const;
  for (const what of ["decode", "dump"] as const) {
    const cmd = group
      .command(what)
      .description(about[what])
      .argument("<image>", "file holding the memory image")
      .addOption(
        new Option("--format <format>", "page-table format").choices(FORMATS).makeOptionMandatory(),
      )
      .option(
        "--ttbr <addr>",
        "physical address of the root table (LPAE: TTBR/VTTBR; DART: one per TTBR, in order: repeated or comma-separated)",
        collect,
        [],
      )
      .option("--base <addr>", "physical address of the image's first byte", "0")
      .option("--ias <bits>", "input address bits (default: 48 LPAE, 32 DART)")
      .option(
        "--oas <bits>",
        "output address bits (default: 48 LPAE, 36 apple-dart, 42 apple-dart2)",
      )
      .option("--granule <size>", "page size: 4K, 16K or 64K (default: 4K, 16K for apple-dart2)")
      .option(
        "--pgsize-bitmap <mask>",
        "page sizes as the driver passes them (overrides --granule)",
      );
    addJson(cmd);
    cmd.action(async (image: string, flags: import("../actions/pgtable.js").PgtableFlags) => {
      const { pgtableCommand } = await import("../actions/pgtable.js");
      done(await pgtableCommand(ctx, what, image, flags));
    });
  }
}
