import { createDevice } from "@devref/device-core";
import { holders } from "@devref/raw-device";
import {
  createRtkit,
  describeMessage,
  EP_MGMT,
  encodeEpmap,
  encodeHello,
  encodeIopPowerStateAck,
  encodeSetApPowerState,
  MGMT_EPMAP_REPLY,
  MGMT_HELLO_REPLY,
  MGMT_SET_AP_PWR_STATE,
  PWR_STATE_ON,
} from "@devref/rtkit";

const dev = createDevice({ name: "smc", release: () => {} });

// A tiny scripted firmware: it hears the AP through send() and answers through
// rtk.receive(), the mailbox interrupt path.
const firmware = {
  send(ep: number, msg0: bigint): void {
    console.log(`AP  -> IOP ${describeMessage(ep, msg0, "to-iop")}`);
    const type = ep === 0x20 ? "app" : Number((msg0 >> 52n) & 0xffn);
    switch (type) {
      case "app": // the application endpoint answers
        answer(0x20, msg0 + 1n);
        break;
      case MGMT_HELLO_REPLY: // one application endpoint, 0x20
        answer(EP_MGMT, encodeEpmap({ base: 1, bitmap: 1, last: true }));
        break;
      case MGMT_EPMAP_REPLY: // the IOP is up
        answer(EP_MGMT, encodeIopPowerStateAck({ state: PWR_STATE_ON }));
        break;
      case MGMT_SET_AP_PWR_STATE: // whatever the AP asks for
        answer(EP_MGMT, encodeSetApPowerState({ state: Number(msg0 & 0xffffn) }));
        break;
    }
  },
};
function answer(ep: number, msg0: bigint): void {
  console.log(`IOP -> AP  ${describeMessage(ep, msg0, "to-ap")}`);
  rtk.receive(ep, msg0);
}

const rtk = createRtkit(dev, {
  transport: firmware,
  ops: {
    recvMessage: (ep, msg0) =>
      console.log(`recvMessage ep 0x${ep.toString(16)}: 0x${msg0.toString(16)}`),
  },
  log: (level, text) => {
    if (level !== "dbg") console.log(`${level} ${text}`);
  },
});
console.log(
  holders(dev)
    .map((h) => h.label)
    .join(", "),
);

answer(EP_MGMT, encodeHello({ minVer: 11, maxVer: 12 })); // the coprocessor has started
await rtk.boot();
await rtk.startEp(0x20);
await rtk.sendMessage(0x20, 0x1234n);
await rtk.settled();
rtk.free();
console.log(
  holders(dev)
    .map((h) => h.label)
    .join(", "),
);
