/**
 * The {@linkcode ObjectStore} conformance suite against the in-memory stand-in the backup unit
 * tests use: the stand-in must behave as the real store does, or those tests prove little.
 */
import { MemoryObjectStore } from "./_test_util.ts";
import { objectStoreConformance } from "./object_store_conformance.ts";

objectStoreConformance(
  "MemoryObjectStore",
  () => Promise.resolve({ store: new MemoryObjectStore(), prefix: "conformance/" }),
);
