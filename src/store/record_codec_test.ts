import { deepEqual, equal, throws } from "node:assert/strict";
import { AssertionError } from "../util/assert.ts";
import {
  decodeRecordValue,
  encodeRecordValue,
  RECORD_FORMAT,
  RECORD_FORMAT_EXPIRING,
  valueExpiresAt,
} from "./record_codec.ts";

Deno.test("encodeRecordValue() round-trips data, version and timestamps exactly", () => {
  const cases: [string, number, number, number][] = [
    ['{"a":[1,"é😀\\u0000",null]}', 0, 0, 0],
    ["null", 1, 1_700_000_000_000, 1_700_000_000_001],
    ['""', Number.MAX_SAFE_INTEGER, -5, 2 ** 52 + 0.5],
    ['"' + "x".repeat(100_000) + '"', 2 ** 40, 1, 2],
  ];
  for (const [dataJson, version, createdAt, updatedAt] of cases) {
    const value = encodeRecordValue(dataJson, version, createdAt, updatedAt);
    equal(value[0], RECORD_FORMAT);
    deepEqual(decodeRecordValue("pk", "sk", value), {
      pk: "pk",
      sk: "sk",
      dataJson,
      version,
      createdAt,
      updatedAt,
      expiresAt: null,
    });
  }
});

Deno.test("decodeRecordValue() reads a value that sits inside a larger buffer", () => {
  const value = encodeRecordValue("[1,2]", 7, 8, 9);
  const buffer = new Uint8Array(value.length + 10);
  buffer.set(value, 3);
  deepEqual(decodeRecordValue("p", "s", buffer.subarray(3, 3 + value.length)), {
    pk: "p",
    sk: "s",
    dataJson: "[1,2]",
    version: 7,
    createdAt: 8,
    updatedAt: 9,
    expiresAt: null,
  });
});

Deno.test("encodeRecordValue() refuses a version that is not a log offset", () => {
  for (const version of [-1, 1.5, NaN, 2 ** 53]) {
    throws(() => encodeRecordValue("1", version, 0, 0), AssertionError);
  }
});

Deno.test("decodeRecordValue() treats a short or foreign value as corruption", () => {
  throws(() => decodeRecordValue("p", "s", new Uint8Array(3)), AssertionError);
  const value = encodeRecordValue("1", 0, 0, 0);
  value[0] = RECORD_FORMAT + 1;
  throws(() => decodeRecordValue("p", "s", value), AssertionError);
});

Deno.test("a record with an expiry instant takes format 2 and round-trips it; without, format 1", () => {
  const expiring = encodeRecordValue('{"a":1}', 3, 10, 20, 1_796_000_000_123);
  equal(expiring[0], RECORD_FORMAT_EXPIRING);
  equal(expiring.length, 33 + 7);
  deepEqual(decodeRecordValue("p", "s", expiring), {
    pk: "p",
    sk: "s",
    dataJson: '{"a":1}',
    version: 3,
    createdAt: 10,
    updatedAt: 20,
    expiresAt: 1_796_000_000_123,
  });
  equal(valueExpiresAt(expiring), 1_796_000_000_123);
  const plain = encodeRecordValue('{"a":1}', 3, 10, 20);
  equal(plain[0], RECORD_FORMAT);
  equal(plain.length, 25 + 7);
  equal(valueExpiresAt(plain), null);
  throws(() => decodeRecordValue("p", "s", expiring.subarray(0, 30)), AssertionError);
});
