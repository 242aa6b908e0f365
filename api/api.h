/*
 * api/api.h — the control plane: HTTP/1.1 + JSON on a Unix socket, served by the daemon.
 *
 * Resources (all bodies JSON; errors are {"error":{"code":"<slug>","message":"<sentence>"}}):
 *   GET    /v1/pool                 pool status
 *   GET    /v1/volumes              {"volumes":[<volume>...]}
 *   POST   /v1/volumes              {"name":"db","size":"20G"|21474836480} -> 201 <volume>
 *   GET    /v1/volumes/NAME         <volume>
 *   PATCH  /v1/volumes/NAME         {"size":...} resize and/or {"name":"new"} rename -> 200 <volume>
 *   DELETE /v1/volumes/NAME         204
 *   POST   /v1/pool/sync            commit now -> 200 pool status
 * Status codes: 400 bad request/body/name/size, 404 no such volume/route, 405 method,
 * 409 exists/busy, 413 too large, 507 pool out of space, 500 internal.
 * Strictness: an unknown field in a body, any query parameter ("?force=1") and any body on a
 * request that takes none are 400, naming what was refused, so a typo never passes silently.
 * Bodies are capped at 64 KiB (413).
 */
#ifndef VV_API_API_H
#define VV_API_API_H

#include "meta/pool.h"

struct vv_api;

/*
 * Create the socket at SOCK_PATH (an old one is replaced), mode 0600, and serve requests on
 * it from an internal thread until vv_api_stop().  Returns 0 or an errno with E filled.
 */
int vv_api_start(struct vv_pool *pool, const char *sock_path, struct vv_api **out,
                 struct vv_err *e);
/* Stop serving, remove the socket and free.  Accepts NULL. */
void vv_api_stop(struct vv_api *api);

#endif
