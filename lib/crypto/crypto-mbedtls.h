/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* INTERNAL to lib/crypto and lib/tls: the bridge from an EcKey to mbedTLS's pk layer, which the
 * TLS stack (mbedtls_ssl_conf_own_cert) and the certificate writer need. Nothing above lib/ may
 * include this header. Implemented in crypto-x509.c. */

#include <mbedtls/pk.h>

#include "crypto/crypto.h"

/* pk must be initialized (mbedtls_pk_init) and empty. On success it holds its own copy of the key
 * on its own P-256 group (with the private scalar when k has one); free it with mbedtls_pk_free,
 * which wipes the scalar. A pk_context is NOT safe to share between threads before its first
 * signature: mbedTLS caches a precomputed table for the base point in the group on first use.
 * -EINVAL (NULL arguments), -ENOMEM, -EIO. */
int ec_key_to_pk(const EcKey *k, mbedtls_pk_context *pk);
