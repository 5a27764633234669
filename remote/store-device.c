/* SPDX-License-Identifier: Apache-2.0 */
/* The store: devices and images (expected PCR values). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "store-sqlite.h"

#define DEVICE_COLUMNS                                                                                      \
	"device_id, hostname, image, ek_cert, ak_public, tls_public, state, reason, enrolled_at, "          \
	"last_seen, attested_at, posture, escrow"

const char *device_state_name(DeviceState s)
{
	switch (s) {
	case DEVICE_ENROLLED:
		return "enrolled";
	case DEVICE_TRUSTED:
		return "trusted";
	case DEVICE_QUARANTINED:
		return "quarantined";
	}
	return NULL;
}

static int device_state_from_name(const char *s, DeviceState *ret)
{
	for (DeviceState d = DEVICE_ENROLLED; d <= DEVICE_QUARANTINED; d++)
		if (s && streq(s, device_state_name(d))) {
			*ret = d;
			return 0;
		}
	return -EIO; /* the CHECK constraint makes this a damaged database */
}

void device_record_done(DeviceRecord *d)
{
	if (!d)
		return;
	free(d->hostname);
	free(d->image);
	free(d->ek_cert);
	free(d->ak_public);
	free(d->tls_public);
	free(d->reason);
	free(d->posture_json);
	free(d->escrow_json);
	*d = (DeviceRecord){};
}

static int bind_blob(sqlite3_stmt *st, int col, const void *p, size_t n)
{
	int rc =
	    p && n > 0 ? sqlite3_bind_blob64(st, col, p, n, SQLITE_TRANSIENT) : sqlite3_bind_null(st, col);
	return rc == SQLITE_OK ? 0 : -ENOMEM;
}

int store_device_put_locked(Store *s, const DeviceRecord *d, bool *ret_existed)
{
	static const char sql_exists[] = "SELECT 1 FROM devices WHERE device_id = ?";
	static const char sql[] =
	    "INSERT INTO devices(" DEVICE_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
	    "ON CONFLICT(device_id) DO UPDATE SET hostname = excluded.hostname, "
	    "image = excluded.image, ek_cert = excluded.ek_cert, "
	    "ak_public = excluded.ak_public, tls_public = excluded.tls_public, "
	    "state = excluded.state, reason = excluded.reason, "
	    "enrolled_at = excluded.enrolled_at, last_seen = excluded.last_seen, "
	    "attested_at = excluded.attested_at, posture = excluded.posture, "
	    "escrow = excluded.escrow";
	_cleanup_stmt_ sqlite3_stmt *st = NULL, *ste = NULL;
	bool existed;
	int r, rc;

	if (!d || !store_device_id_valid(d->device_id) || !d->hostname || !device_state_name(d->state))
		return -EINVAL;
	if (d->image && !store_name_valid(d->image))
		return -ENOENT;

	r = store_prepare(s, sql_exists, &ste);
	if (r < 0)
		return r;
	r = store_bind_text(ste, 1, d->device_id);
	if (r < 0)
		return r;
	rc = sqlite3_step(ste);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_error(s, rc, "looking up the device");
	existed = rc == SQLITE_ROW;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (store_bind_text(st, 1, d->device_id) < 0 || store_bind_text(st, 2, d->hostname) < 0 ||
	    store_bind_text(st, 3, d->image) < 0 || bind_blob(st, 4, d->ek_cert, d->ek_cert_size) < 0 ||
	    bind_blob(st, 5, d->ak_public, d->ak_public_size) < 0 ||
	    bind_blob(st, 6, d->tls_public, d->tls_public_size) < 0 ||
	    store_bind_text(st, 7, device_state_name(d->state)) < 0 ||
	    store_bind_text(st, 8, d->reason) < 0 ||
	    sqlite3_bind_int64(st, 9, (int64_t)d->enrolled_at) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 10, (int64_t)d->last_seen) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 11, (int64_t)d->attested_at) != SQLITE_OK ||
	    store_bind_text(st, 12, d->posture_json) < 0 || store_bind_text(st, 13, d->escrow_json) < 0)
		return -ENOMEM;
	r = store_step_done(s, st, "storing the device");
	if (r < 0)
		return r;
	if (ret_existed)
		*ret_existed = existed;
	return 0;
}

int store_device_put(Store *s, const DeviceRecord *d)
{
	_cleanup_txn_ StoreTxn txn = {};
	int r;

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_device_put_locked(s, d, NULL);
	if (r < 0)
		return r;
	return store_txn_commit(&txn);
}

static int device_from_row(sqlite3_stmt *st, DeviceRecord *ret)
{
	_cleanup_(device_record_done) DeviceRecord d = {};
	const unsigned char *id = sqlite3_column_text(st, 0);
	int r;

	if (!id || strlen((const char *)id) != 32)
		return -EIO;
	memcpy(d.device_id, id, 33);
	if ((r = store_column_strdup(st, 1, &d.hostname)) < 0 ||
	    (r = store_column_strdup(st, 2, &d.image)) < 0 ||
	    (r = store_column_blobdup(st, 3, &d.ek_cert, &d.ek_cert_size)) < 0 ||
	    (r = store_column_blobdup(st, 4, &d.ak_public, &d.ak_public_size)) < 0 ||
	    (r = store_column_blobdup(st, 5, &d.tls_public, &d.tls_public_size)) < 0 ||
	    (r = device_state_from_name((const char *)sqlite3_column_text(st, 6), &d.state)) < 0 ||
	    (r = store_column_strdup(st, 7, &d.reason)) < 0 ||
	    (r = store_column_strdup(st, 11, &d.posture_json)) < 0 ||
	    (r = store_column_strdup(st, 12, &d.escrow_json)) < 0)
		return r;
	d.enrolled_at = (time_t)sqlite3_column_int64(st, 8);
	d.last_seen = (time_t)sqlite3_column_int64(st, 9);
	d.attested_at = (time_t)sqlite3_column_int64(st, 10);

	*ret = d;
	d = (DeviceRecord){};
	return 0;
}

int store_device_get(Store *s, const char *device_id, DeviceRecord *ret)
{
	static const char sql[] = "SELECT " DEVICE_COLUMNS " FROM devices WHERE device_id = ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!store_device_id_valid(device_id))
		return -ENOENT;
	r = store_query_one(s, sql, device_id, "reading the device", &st);
	if (r < 0)
		return r;
	return device_from_row(st, ret);
}

static void device_records_free(DeviceRecord *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		device_record_done(&a[i]);
	free(a);
}

int store_device_list(Store *s, DeviceRecord **ret, size_t *ret_n)
{
	static const char sql[] = "SELECT " DEVICE_COLUMNS " FROM devices ORDER BY device_id";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	DeviceRecord *a = NULL;
	size_t n = 0;
	int r, rc;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		DeviceRecord *b = reallocarray(a, n + 1, sizeof(*a));
		if (!b) {
			device_records_free(a, n);
			return -ENOMEM;
		}
		a = b;
		r = device_from_row(st, &a[n]);
		if (r < 0) {
			device_records_free(a, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		device_records_free(a, n);
		return store_error(s, rc, "listing devices");
	}
	*ret = a;
	*ret_n = n;
	return 0;
}

/* Runs an UPDATE of one device: -ENOENT when no row changed. */
static int device_update(Store *s, sqlite3_stmt *st, const char *what)
{
	int r = store_step_done(s, st, what);
	if (r < 0)
		return r;
	return sqlite3_changes(s->db) == 1 ? 0 : -ENOENT;
}

int store_device_set_state(Store *s, const char *device_id, DeviceState state, const char *reason,
			   time_t attested_at)
{
	static const char sql[] =
	    "UPDATE devices SET state = ?, reason = ?, attested_at = ? WHERE device_id = ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!store_device_id_valid(device_id))
		return -ENOENT;
	if (!device_state_name(state))
		return -EINVAL;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (store_bind_text(st, 1, device_state_name(state)) < 0 || store_bind_text(st, 2, reason) < 0 ||
	    sqlite3_bind_int64(st, 3, (int64_t)attested_at) != SQLITE_OK ||
	    store_bind_text(st, 4, device_id) < 0)
		return -ENOMEM;
	return device_update(s, st, "setting the device state");
}

int store_device_seen(Store *s, const char *device_id, time_t when, const char *posture_json)
{
	/* A heartbeat without posture keeps the last one. */
	static const char sql[] =
	    "UPDATE devices SET last_seen = ?, posture = coalesce(?, posture) WHERE device_id = ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!store_device_id_valid(device_id))
		return -ENOENT;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (sqlite3_bind_int64(st, 1, (int64_t)when) != SQLITE_OK ||
	    store_bind_text(st, 2, posture_json) < 0 || store_bind_text(st, 3, device_id) < 0)
		return -ENOMEM;
	return device_update(s, st, "recording the device as seen");
}

int store_device_set_escrow(Store *s, const char *device_id, const char *escrow_json)
{
	static const char sql[] = "UPDATE devices SET escrow = ? WHERE device_id = ?";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!store_device_id_valid(device_id))
		return -ENOENT;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	if (store_bind_text(st, 1, escrow_json) < 0 || store_bind_text(st, 2, device_id) < 0)
		return -ENOMEM;
	return device_update(s, st, "storing the escrow blob");
}

/* ---- images ---- */

void image_record_done(ImageRecord *i)
{
	if (!i)
		return;
	free(i->name);
	*i = (ImageRecord){};
}

int store_image_put_locked(Store *s, const ImageRecord *i, bool *ret_existed)
{
	static const char sql_exists[] = "SELECT 1 FROM images WHERE name = ?";
	static const char sql_upsert[] = "INSERT INTO images(name, updated_at) VALUES (?, ?) "
					 "ON CONFLICT(name) DO UPDATE SET updated_at = excluded.updated_at";
	static const char sql_clear[] = "DELETE FROM image_pcrs WHERE image = ?";
	static const char sql_pcr[] = "INSERT INTO image_pcrs(image, pcr, value) VALUES (?, ?, ?)";
	_cleanup_stmt_ sqlite3_stmt *ste = NULL, *stu = NULL, *stc = NULL;
	bool existed;
	int r, rc;

	/* An image without expected values would make every quote match. */
	if (!i || !store_name_valid(i->name) || i->pcr_mask == 0 || i->pcr_mask >= (1U << 24))
		return -EINVAL;

	r = store_prepare(s, sql_exists, &ste);
	if (r < 0)
		return r;
	r = store_bind_text(ste, 1, i->name);
	if (r < 0)
		return r;
	rc = sqlite3_step(ste);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_error(s, rc, "looking up the image");
	existed = rc == SQLITE_ROW;

	r = store_prepare(s, sql_upsert, &stu);
	if (r < 0)
		return r;
	if (store_bind_text(stu, 1, i->name) < 0 ||
	    sqlite3_bind_int64(stu, 2, (int64_t)store_now(s)) != SQLITE_OK)
		return -ENOMEM;
	r = store_step_done(s, stu, "storing the image");
	if (r < 0)
		return r;

	r = store_prepare(s, sql_clear, &stc);
	if (r < 0)
		return r;
	r = store_bind_text(stc, 1, i->name);
	if (r < 0)
		return r;
	r = store_step_done(s, stc, "replacing the image's PCR values");
	if (r < 0)
		return r;

	for (unsigned pcr = 0; pcr < 24; pcr++) {
		_cleanup_stmt_ sqlite3_stmt *stp = NULL;

		if (!(i->pcr_mask & (1U << pcr)))
			continue;
		r = store_prepare(s, sql_pcr, &stp);
		if (r < 0)
			return r;
		if (store_bind_text(stp, 1, i->name) < 0 ||
		    sqlite3_bind_int(stp, 2, (int)pcr) != SQLITE_OK ||
		    bind_blob(stp, 3, i->pcr_values[pcr], 32) < 0)
			return -ENOMEM;
		r = store_step_done(s, stp, "storing a PCR value");
		if (r < 0)
			return r;
	}
	if (ret_existed)
		*ret_existed = existed;
	return 0;
}

int store_image_put(Store *s, const ImageRecord *i)
{
	_cleanup_txn_ StoreTxn txn = {};
	int r;

	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_image_put_locked(s, i, NULL);
	if (r < 0)
		return r;
	return store_txn_commit(&txn);
}

int store_image_add(Store *s, const ImageRecord *i, const char *actor)
{
	_cleanup_txn_ StoreTxn txn = {};
	char details[64];
	bool existed;
	int r;

	if (!actor || !*actor)
		return -EINVAL;
	r = store_txn_begin(s, &txn);
	if (r < 0)
		return r;
	r = store_image_put_locked(s, i, &existed);
	if (r < 0)
		return r;
	snprintf(details, sizeof(details), "{\"pcr_mask\":%u,\"replaced\":%s}", i->pcr_mask,
		 existed ? "true" : "false");
	r = store_audit_append_locked(s, actor, "image.set", i->name, details);
	if (r < 0)
		return r;
	return store_txn_commit(&txn);
}

/* Rows (name, pcr, value) ordered by name then pcr, grouped into records. */
static int images_from_rows(Store *s, sqlite3_stmt *st, ImageRecord **ret, size_t *ret_n)
{
	ImageRecord *a = NULL;
	size_t n = 0;
	int rc, r = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int pcr = sqlite3_column_int(st, 1);

		if (!name || pcr < 0 || pcr > 23 || sqlite3_column_bytes(st, 2) != 32) {
			r = -EIO;
			break;
		}
		if (n == 0 || !streq(a[n - 1].name, name)) {
			ImageRecord *b = reallocarray(a, n + 1, sizeof(*a));
			if (!b) {
				r = -ENOMEM;
				break;
			}
			a = b;
			a[n] = (ImageRecord){.name = strdup(name)};
			if (!a[n].name) {
				r = -ENOMEM;
				break;
			}
			n++;
		}
		a[n - 1].pcr_mask |= 1U << pcr;
		memcpy(a[n - 1].pcr_values[pcr], sqlite3_column_blob(st, 2), 32);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = store_error(s, rc, "reading images");
	if (r < 0) {
		for (size_t k = 0; k < n; k++)
			image_record_done(&a[k]);
		free(a);
		return r;
	}
	*ret = a;
	*ret_n = n;
	return 0;
}

int store_image_get(Store *s, const char *name, ImageRecord *ret)
{
	static const char sql[] = "SELECT image, pcr, value FROM image_pcrs WHERE image = ? ORDER BY pcr";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	ImageRecord *a = NULL;
	size_t n = 0;
	int r;

	if (!store_name_valid(name))
		return -ENOENT;
	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	r = store_bind_text(st, 1, name);
	if (r < 0)
		return r;
	r = images_from_rows(s, st, &a, &n);
	if (r < 0)
		return r;
	if (n != 1) {
		free(a);
		return -ENOENT;
	}
	*ret = a[0];
	free(a);
	return 0;
}

int store_image_list(Store *s, ImageRecord **ret, size_t *ret_n)
{
	static const char sql[] = "SELECT image, pcr, value FROM image_pcrs ORDER BY image, pcr";
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	r = store_prepare(s, sql, &st);
	if (r < 0)
		return r;
	return images_from_rows(s, st, ret, ret_n);
}
