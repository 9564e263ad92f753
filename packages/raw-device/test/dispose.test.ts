import { DevrefError, DisposeStack } from "@devref/raw-device";
import { describe, expect, it } from "vitest";

describe("DisposeStack", () => {
  it("releases in reverse order", () => {
    const log: string[] = [];
    {
      using stack = new DisposeStack();
      stack.defer(() => log.push("a"));
      stack.adopt("b", (v) => log.push(v));
      stack.use({ [Symbol.dispose]: () => log.push("c") });
      stack.use(null);
    }
    expect(log).toEqual(["c", "b", "a"]);
  });

  it("rolls back completed steps when a later step fails", () => {
    const log: string[] = [];
    const setUp = (failAt: number): DisposeStack => {
      using stack = new DisposeStack();
      for (let i = 0; i < 3; i++) {
        if (i === failAt) throw new DevrefError("ENOMEM", `step ${i} failed`);
        stack.defer(() => log.push(`undo ${i}`));
      }
      return stack.move();
    };
    expect(() => setUp(2)).toThrowError(/step 2 failed/);
    expect(log).toEqual(["undo 1", "undo 0"]);
    log.length = 0;
    const kept = setUp(-1);
    expect(log).toEqual([]);
    kept.dispose();
    expect(log).toEqual(["undo 2", "undo 1", "undo 0"]);
  });

  it("runs every action even when some throw, and reports them all", () => {
    const log: string[] = [];
    const stack = new DisposeStack();
    stack.defer(() => log.push("first"));
    stack.defer(() => {
      throw new Error("x");
    });
    stack.defer(() => {
      throw new Error("y");
    });
    let error: unknown;
    try {
      stack.dispose();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AggregateError);
    expect((error as AggregateError).errors.map((e: Error) => e.message)).toEqual(["y", "x"]);
    expect(log).toEqual(["first"]);
    stack.dispose();
    expect(() => stack.defer(() => {})).toThrowError(/already disposed or moved/);
  });

  it("rejects a resource without a dispose method", () => {
    const stack = new DisposeStack();
    expect(() => stack.use({} as Disposable)).toThrowError(/\[Symbol\.dispose\]\(\) method/);
  });
});
