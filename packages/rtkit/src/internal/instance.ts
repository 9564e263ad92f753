//! C header: include/linux/soc/apple/rtkit.h (the apple_rtkit_* calls a driver makes)
//!
//! What createRtkit hands out: the Rtkit interface and nothing else. The client's state and
//! the helpers the message handlers share stay on an RtkitClient that only this package's
//! modules hold, so a caller cannot reach (or call with wrong arguments) anything the
//! interface does not name.

import type { Rtkit, RtkitSendOptions } from "../types.js";
import type { RtkitClient } from "./client.js";

/**
 * @internal The object behind {@link Rtkit}: forwards each call to its RtkitClient, which
 * validates the arguments.
 */
export class RtkitInstance implements Rtkit {
  readonly #client: RtkitClient;

  constructor(client: RtkitClient) {
    this.#client = client;
  }

  get isRunning(): boolean {
    return this.#client.isRunning;
  }
  get isCrashed(): boolean {
    return this.#client.isCrashed;
  }
  get isFreed(): boolean {
    return this.#client.isFreed;
  }
  get version(): number {
    return this.#client.version;
  }
  get iopPowerState(): number {
    return this.#client.iopPowerState;
  }
  get apPowerState(): number {
    return this.#client.apPowerState;
  }
  get deviceName(): string {
    return this.#client.deviceName;
  }
  hasEndpoint(ep: number): boolean {
    return this.#client.hasEndpoint(ep);
  }

  receive(ep: number, msg0: bigint): void {
    this.#client.receive(ep, msg0);
  }
  settled(): Promise<void> {
    return this.#client.settled();
  }

  boot(): Promise<void> {
    return this.#client.boot();
  }
  wake(): Promise<void> {
    return this.#client.wake();
  }
  quiesce(): Promise<void> {
    return this.#client.quiesce();
  }
  idle(): Promise<void> {
    return this.#client.idle();
  }
  shutdown(): Promise<void> {
    return this.#client.shutdown();
  }
  poweroff(): Promise<void> {
    return this.#client.poweroff();
  }
  reinit(): Promise<void> {
    return this.#client.reinit();
  }
  poll(): Promise<void> {
    return this.#client.poll();
  }
  startEp(ep: number): Promise<void> {
    return this.#client.startEp(ep);
  }
  sendMessage(ep: number, msg0: bigint, options?: RtkitSendOptions): Promise<void> {
    return this.#client.sendMessage(ep, msg0, options);
  }

  free(): void {
    this.#client.free();
  }
  [Symbol.dispose](): void {
    this.#client.free();
  }
}
