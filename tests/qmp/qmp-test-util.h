/*
 * qmp-test-util.h: drive the framing layer the way QEMU's monitor does
 *
 * The unit tests compare the framing layer with QEMU by the one thing a
 * client can observe: the bytes of the replies.  qmp_test_replies() feeds
 * input to a streamer in chosen pieces and answers each message or error
 * as QEMU's monitor would if no command existed (request check errors,
 * parse errors, or CommandNotFound), with ids echoed QEMU's way.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>

/**
 * qmp_test_replies - QEMU's replies to @data
 * @data: the input
 * @len: its length
 * @split: feed the first @split bytes as one piece first
 * @chunk: then feed the rest in pieces of this many bytes (0: one piece)
 * @oob: whether the client negotiated OOB
 *
 * Returns the replies, each ending in CRLF, concatenated.
 */
char *qmp_test_replies(const char *data, gsize len, gsize split, gsize chunk,
                       gboolean oob);

/**
 * qmp_test_trace - what the streamer hands out for @data, as text
 * @data: the input
 * @len: its length
 * @split: as for qmp_test_replies()
 * @chunk: as for qmp_test_replies()
 *
 * One line per callback: "error: TEXT" or "message TYPE: BYTES" followed
 * by one line per member: "  KEY@OFF = VALUE-BYTES (TYPE)".
 */
char *qmp_test_trace(const char *data, gsize len, gsize split, gsize chunk);
