import { deepEqual, equal } from "node:assert/strict";
import { getU64, readU64, setU64, writeU64 } from "./u64.ts";

Deno.test("writeU64() writes the bytes setU64() writes, and getU64() reads them back", () => {
  const values = [
    0,
    1,
    255,
    256,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_2345_6789_abcd,
    Number.MAX_SAFE_INTEGER,
  ];
  for (let seed = 1; values.length < 200; seed++) {
    values.push(
      Math.floor(((seed * 2654435761) % 4294967296) * (2 ** 21) + seed * 7919) %
        Number.MAX_SAFE_INTEGER,
    );
  }
  for (const value of values) {
    const viaView = new Uint8Array(11);
    setU64(new DataView(viaView.buffer), 3, value);
    const bytewise = new Uint8Array(11);
    writeU64(bytewise, 3, value);
    deepEqual(bytewise, viaView, String(value));
    equal(getU64(new DataView(bytewise.buffer), 3), value);
    equal(readU64(bytewise, 3), value);
  }
});
