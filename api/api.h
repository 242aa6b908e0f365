/*
 * api/api.h — the control plane: HTTP/1.1 + JSON on a Unix socket, served by the daemon.
 *
 * Resources (all bodies JSON; errors are {"error":{"code":"<slug>","message":"<sentence>"}}):
 *   GET    /v1/pool                 pool status
 *   POST   /v1/pool/sync            commit now -> 200 pool status
 *   GET    /v1/volumes              {"volumes":[<volume>...]}
 *   POST   /v1/volumes              {"name":"db","size":"20G"|21474836480} -> 201 <volume>
 *   GET    /v1/volumes/NAME         <volume>
 *   PATCH  /v1/volumes/NAME         {"size":...} resize and/or {"name":"new"} rename
 *                                   -> 200 <volume>
 *   DELETE /v1/volumes/NAME         204 (?recursive=true: with its snapshots)
 *   GET    /v1/snapshots            {"snapshots":[<snapshot>...]}, of every volume
 *   GET    /v1/volumes/NAME/snapshots                {"snapshots":[...]}
 *   POST   /v1/volumes/NAME/snapshots                {"name":"s1"} -> 201 <snapshot>
 *   GET    /v1/volumes/NAME/snapshots/SNAP           <snapshot>
 *   PATCH  /v1/volumes/NAME/snapshots/SNAP           {"name":"new"} rename -> 200 <snapshot>
 *   DELETE /v1/volumes/NAME/snapshots/SNAP           204
 *   POST   /v1/volumes/NAME/snapshots/SNAP/restore   -> 200 <volume>
 *   POST   /v1/volumes/NAME/snapshots/SNAP/clone     {"name":"test"} -> 201 <volume>
 *   GET    /v1/groups               {"groups":[<group>...]}
 *   POST   /v1/groups               {"name":"app","volumes":["db","logs"]} -> 201 <group>
 *   GET    /v1/groups/NAME          <group>
 *   PATCH  /v1/groups/NAME          {"add":[...],"remove":[...]} -> 200 <group>
 *   DELETE /v1/groups/NAME          204
 *   POST   /v1/groups/NAME/snapshots                 {"name":"nightly"} -> 201 <group>
 *   POST   /v1/groups/NAME/snapshots/SNAP/restore    -> 200 <group>
 *
 * Replication sessions (replication/repl.h):
 *   GET    /v1/replication          {"sessions":[<session>...]}
 *   POST   /v1/replication          {"name":"db-dr","volume":"db","peer":"10.0.0.2:7700",
 *                                    "key":"/etc/vvfs/peer.key", "mode":"periodic"|"continuous",
 *                                    "rpo":300|"5m", "keep_remote":N} -> 201 <session>
 *                                    ("group":"app" instead of "volume": a group session)
 *            name, volume, peer (HOST:PORT, an IPv6 address as [::1]:7700) and key (an absolute
 *            path: the daemon runs in "/") are required; mode defaults to periodic, rpo
 *            (seconds, or a duration such as "30s", "5m", "2h") to 300, from 1 s to 7 days.
 *   GET    /v1/replication/NAME     <session>
 *   DELETE /v1/replication/NAME     204
 *   POST   /v1/replication/NAME/sync     [{"wait":true,"timeout":600|"10m","pit":"SNAP"}]
 *            -> 200 <session>; "pit": first take user snapshot SNAP of the volume (of every
 *            member of the group), a named point in time that this sync carries over
 *            start a sync now; with "wait", answer once a sync started after the request has
 *            completed (the session then) or failed (its error), or after "timeout" seconds
 *            (1 to 3600, default 3600: 504, the sync goes on).  The body is optional.
 *   POST   /v1/replication/NAME/pause    -> 200 <session>
 *   POST   /v1/replication/NAME/resume   -> 200 <session>
 *   <session> is {"id" (16 hex digits, the same on both nodes), "name", "role": "source"|
 *   "destination", "mode": "periodic"|
 *   "continuous"|null (a destination has none), "state": "initializing"|"ok"|"synchronizing"|
 *   "paused"|"error", "rpo" (s), "keep_remote", "volume" (null for a group's source), "group" (or null), "peer", "key" (the key file, null on a
 *   destination), "point": {"gen","time"} or null (no consistent point yet), "syncs",
 *   "bytes_sent", "transfer": {"started","bytes","left","rate","eta"} (the current transfer,
 *   else the last), "lag" (s), "lag_bytes", "overdue" (bool), "next_sync", "error" (the last
 *   error since the last success, or null), "error_time"}; times are unix seconds.
 *
 * Status codes: 400 bad request/body/name/size/duration/address, 403 refused by permissions
 * (a key file others may read, a peer that does not take our key), 404 no such volume/
 * snapshot/group/session/route, 405 method, 409 exists/busy, or "read_only" (a replica
 * volume; a destination's session, which its source drives), or "paused" (sync of a paused
 * session), 413 too large, 502 "peer_failed" (the peer failed a waited-for sync), 504
 * "timeout" (a sync's wait ran out, or the peer stopped answering), 507 pool out of space,
 * 500 internal.
 * Strictness: an unknown field in a body, any query parameter ("?force=1") and any body on a
 * request that takes none are 400, naming what was refused, so a typo never passes silently.
 * Bodies are capped at 64 KiB (413).
 */
#ifndef VV_API_API_H
#define VV_API_API_H

#include "meta/pool.h"

struct vv_api;
struct vv_repl;

/*
 * Create the socket at SOCK_PATH (an old one is replaced), mode 0600, and serve requests on
 * it from an internal thread until vv_api_stop().  POOL and REPL (the replication service of
 * POOL) are borrowed: they must outlive the API.  Returns 0 or an errno with E filled.
 */
int vv_api_start(struct vv_pool *pool, struct vv_repl *repl, const char *sock_path,
                 struct vv_api **out, struct vv_err *e);
/* Stop serving, remove the socket and free.  Waits for every request in progress (the
 * daemon first makes replication end syncs that handlers wait for: vv_repl_shutdown).
 * Accepts NULL. */
void vv_api_stop(struct vv_api *api);

#endif
