/**
 * Cluster: everything a node needs to know about its region. Gossip over UDP (signed state
 * datagrams, Fly internal DNS and static discovery, failure detection by silence), the membership
 * view (who serves which partition), and the read router that proxies a read to a peer serving
 * its partition, one hop at most.
 *
 * @module
 */
export { Gossip, joinHostPort, splitHostPort, unmapIpv4 } from "./gossip.ts";
export type { GossipOptions } from "./gossip.ts";
export { Membership } from "./membership.ts";
export type { Health, Member, MembershipOptions, Observed } from "./membership.ts";
export {
  DATAGRAM_BYTES_MAX,
  decodeBitmap,
  decodeState,
  encodeBitmap,
  encodeState,
} from "./message.ts";
export type { DropReason, NodeState } from "./message.ts";
export {
  INTERNAL_GET_PATH,
  INTERNAL_HISTORY_PATH,
  INTERNAL_LIST_PATH,
  INTERNAL_SNAPSHOT_PATH,
  INTERNAL_WATCH_PATH,
  MANIFEST_HEADER,
  Router,
} from "./router.ts";
export type { RoutedKey, RouterOptions } from "./router.ts";
