#define _POSIX_C_SOURCE 200809L
#include "state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static fb_status state_read(void *ctx, uint8_t *buf, size_t len, int *found) {
    const state_file *file = ctx;
    int fd = open(file->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) return FB_ERR_STORAGE;
        *found = 0; /* a fresh device */
        return FB_OK;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (got != len) return FB_ERR_STORAGE; /* short: the library must not guess its counters */
    *found = 1;
    return FB_OK;
}

/** The folder of `path` (for its fsync after the rename), into `out`. */
static void folder_of(const char *path, char *out, size_t size) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(out, size, ".");
    } else if (slash == path) {
        snprintf(out, size, "/");
    } else {
        snprintf(out, size, "%.*s", (int)(slash - path), path);
    }
}

static fb_status state_write(void *ctx, const uint8_t *buf, size_t len) {
    state_file *file = ctx;
    char folder[4096];
    int fd = open(file->temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return FB_ERR_STORAGE;
    size_t put = 0;
    while (put < len) {
        ssize_t n = write(fd, buf + put, len - put);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        put += (size_t)n;
    }
    if (put != len || fsync(fd) != 0) {
        close(fd);
        unlink(file->temporary);
        return FB_ERR_STORAGE;
    }
    if (close(fd) != 0 || rename(file->temporary, file->path) != 0) return FB_ERR_STORAGE;
    folder_of(file->path, folder, sizeof folder);
    int dir = open(folder, O_RDONLY | O_CLOEXEC);
    if (dir < 0) return FB_ERR_STORAGE;
    int synced = fsync(dir);
    close(dir);
    if (synced != 0) return FB_ERR_STORAGE;
    file->writes++;
    return FB_OK;
}

fb_status state_file_init(state_file *file, fb_storage *storage, const char *path) {
    if (file == NULL || storage == NULL || path == NULL || path[0] == '\0') return FB_ERR_ARG;
    int n = snprintf(file->temporary, sizeof file->temporary, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof file->temporary) return FB_ERR_TOO_LARGE;
    file->path = path;
    file->writes = 0;
    storage->ctx = file;
    storage->read = state_read;
    storage->write = state_write;
    return FB_OK;
}
