/*
 * The storage interface (fb_counter.h) on a POSIX file: the example's --state FILE. A write is
 * durable when it returns — a new file written and fsync'd, renamed over the old one, the folder
 * fsync'd — so a crash or a power cut leaves the old record or the new one, never a torn one
 * (what an A/B flash page pair gives a microcontroller).
 */
#ifndef EXAMPLE_STATE_FILE_H
#define EXAMPLE_STATE_FILE_H

#include "fb/fb_counter.h"

typedef struct state_file {
    const char *path;
    char temporary[4096]; /* path + ".tmp" */
    unsigned writes;      /* records written by this process (NVM wear, reported on stderr) */
} state_file;

/** Fills `storage` to use the file at `path` (created on the first write, mode 0600). */
fb_status state_file_init(state_file *file, fb_storage *storage, const char *path);

#endif
