/*
 * The writer's VFS ("vitalog-wal"): SQLite's default VFS, except that the
 * writes to a write-ahead log are gathered in memory and reach the file in
 * one pwrite() per run of adjacent bytes, at the latest when SQLite syncs.
 *
 * Why: SQLite writes each WAL frame as two writes (its 24-byte header, then
 * the page), so a group commit that dirties 80 pages costs 160 system calls
 * before its one fsync; on a virtual machine a system call costs more than
 * the copy it makes. Gathered, the same commit is one or two.
 *
 * DESIGN NOTES
 *
 * 1. Durability is unchanged: SQLite relies on nothing it wrote being on
 *    disk before it calls xSync (the WAL is synced at every commit with
 *    synchronous=FULL, which the store always sets), and xSync writes the
 *    gathered bytes out before it syncs. Nothing a commit wrote is in
 *    memory only when the commit returns.
 * 2. Visibility is unchanged: other connections see a commit's frames only
 *    after the wal-index header moves, which SQLite writes after the sync.
 *    Every other way the file can be looked at or changed through this
 *    handle (xRead, xFileSize, xTruncate, xFileControl, xClose) first
 *    writes the gathered bytes out, so this connection always reads what
 *    it wrote.
 * 3. Only the main write-ahead log (SQLITE_OPEN_WAL) is gathered; every
 *    other file's methods, and every other method, are the default VFS's,
 *    called through the wrapper as they are.
 *    Writes that do not continue the gathered run, or would overflow the
 *    buffer, write it out first.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_internal.h"

#define GATHER_MAX (2 << 20) /* bytes gathered before they are written out anyway */

typedef struct gfile {
    sqlite3_file base;  /* methods: gather_methods (WAL) or the real ones */
    sqlite3_file *real; /* the default VFS's file, allocated right after */
    int gather;
    char *buf;
    size_t len;
    sqlite3_int64 at; /* file offset of buf[0] */
} gfile_t;

static sqlite3_vfs gather_vfs;
static sqlite3_io_methods gather_methods;

/* The unix VFS writes at most 128 KiB - 1 per call (it masks the length
 * to 17 bits and reports a short write as SQLITE_FULL): in pieces. */
#define WRITE_MAX (120 << 10)

static int flush(gfile_t *g)
{
    int rc = SQLITE_OK;
    size_t done = 0;
    if (!g->gather || !g->len)
        return SQLITE_OK;
    while (rc == SQLITE_OK && done < g->len) {
        size_t n = g->len - done < WRITE_MAX ? g->len - done : WRITE_MAX;
        rc = g->real->pMethods->xWrite(g->real, g->buf + done, (int)n, g->at + (sqlite3_int64)done);
        done += n;
    }
    g->len = 0;
    return rc;
}

static int g_close(sqlite3_file *f)
{
    gfile_t *g = (gfile_t *)f;
    int rc = flush(g), rc2 = g->real->pMethods->xClose(g->real);
    free(g->buf);
    g->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int g_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    gfile_t *g = (gfile_t *)f;
    int rc = flush(g);
    return rc != SQLITE_OK ? rc : g->real->pMethods->xRead(g->real, p, n, off);
}

static int g_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    gfile_t *g = (gfile_t *)f;
    int rc;
    if (!g->gather)
        return g->real->pMethods->xWrite(g->real, p, n, off);
    if (g->len && (off != g->at + (sqlite3_int64)g->len || g->len + (size_t)n > GATHER_MAX) &&
        (rc = flush(g)) != SQLITE_OK)
        return rc;
    if ((size_t)n > WRITE_MAX || (!g->buf && !(g->buf = malloc(GATHER_MAX))))
        return g->real->pMethods->xWrite(g->real, p, n, off);
    if (!g->len)
        g->at = off;
    memcpy(g->buf + g->len, p, (size_t)n);
    g->len += (size_t)n;
    return SQLITE_OK;
}

static int g_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    gfile_t *g = (gfile_t *)f;
    int rc = flush(g);
    return rc != SQLITE_OK ? rc : g->real->pMethods->xTruncate(g->real, size);
}

static int g_sync(sqlite3_file *f, int flags)
{
    gfile_t *g = (gfile_t *)f;
    int rc = flush(g);
    return rc != SQLITE_OK ? rc : g->real->pMethods->xSync(g->real, flags);
}

static int g_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    gfile_t *g = (gfile_t *)f;
    int rc = flush(g);
    return rc != SQLITE_OK ? rc : g->real->pMethods->xFileSize(g->real, size);
}

static int g_lock(sqlite3_file *f, int lock)
{
    return ((gfile_t *)f)->real->pMethods->xLock(((gfile_t *)f)->real, lock);
}

static int g_unlock(sqlite3_file *f, int lock)
{
    return ((gfile_t *)f)->real->pMethods->xUnlock(((gfile_t *)f)->real, lock);
}

static int g_check_lock(sqlite3_file *f, int *out)
{
    return ((gfile_t *)f)->real->pMethods->xCheckReservedLock(((gfile_t *)f)->real, out);
}

static int g_file_control(sqlite3_file *f, int op, void *arg)
{
    gfile_t *g = (gfile_t *)f;
    int rc = flush(g);
    return rc != SQLITE_OK ? rc : g->real->pMethods->xFileControl(g->real, op, arg);
}

static int g_sector_size(sqlite3_file *f)
{
    return ((gfile_t *)f)->real->pMethods->xSectorSize(((gfile_t *)f)->real);
}

static int g_device_characteristics(sqlite3_file *f)
{
    return ((gfile_t *)f)->real->pMethods->xDeviceCharacteristics(((gfile_t *)f)->real);
}

#define REAL(f) (((gfile_t *)(f))->real)

static int g_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}

static int g_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void g_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int g_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int g_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int g_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static int g_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    sqlite3_vfs *real = vfs->pAppData;
    gfile_t *g = (gfile_t *)f;
    int rc;
    memset(g, 0, sizeof *g);
    g->real = (sqlite3_file *)(g + 1);
    rc = real->xOpen(real, name, g->real, flags, out_flags);
    if (rc != SQLITE_OK || !g->real->pMethods) {
        g->base.pMethods = NULL;
        return rc;
    }
    /* every file is seen through the wrapper (the default VFS's file must
     * stay where it was opened); only the WAL is gathered (flush() is a
     * no-op for the others) */
    g->gather = (flags & SQLITE_OPEN_WAL) != 0;
    if (g->real->pMethods->iVersion < gather_methods.iVersion) {
        /* a default VFS older than SQLite 3.8: not ours to wrap */
        g->real->pMethods->xClose(g->real);
        return SQLITE_CANTOPEN;
    }
    g->base.pMethods = &gather_methods;
    return SQLITE_OK;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered = SQLITE_ERROR;

static void register_vfs(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real)
        return;
    gather_vfs = *real;
    gather_vfs.zName = VL_SQLITE_WRITER_VFS;
    gather_vfs.pAppData = real;
    /* room for our header and the real file after it */
    gather_vfs.szOsFile = (int)sizeof(gfile_t) + real->szOsFile;
    gather_vfs.xOpen = g_open;
    gather_vfs.pNext = NULL;
    gather_methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = g_close,
        .xRead = g_read,
        .xWrite = g_write,
        .xTruncate = g_truncate,
        .xSync = g_sync,
        .xFileSize = g_file_size,
        .xLock = g_lock,
        .xUnlock = g_unlock,
        .xCheckReservedLock = g_check_lock,
        .xFileControl = g_file_control,
        .xSectorSize = g_sector_size,
        .xDeviceCharacteristics = g_device_characteristics,
        .xShmMap = g_shm_map,
        .xShmLock = g_shm_lock,
        .xShmBarrier = g_shm_barrier,
        .xShmUnmap = g_shm_unmap,
        .xFetch = g_fetch,
        .xUnfetch = g_unfetch,
    };
    registered = sqlite3_vfs_register(&gather_vfs, 0);
}

int vl_sqlite_writer_vfs(void)
{
    pthread_once(&once, register_vfs);
    return registered == SQLITE_OK ? 0 : -1;
}
