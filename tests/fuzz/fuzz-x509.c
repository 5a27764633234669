/* SPDX-License-Identifier: Apache-2.0 */
/* x509_verify_der on arbitrary bytes against a fixed CA (a P-256 test CA made with openssl, valid
 * until 2126; corpus/x509/leaf-p256-valid.der is a leaf it signed, so the full chain path is
 * reached), plus the DER -> PEM -> DER round trip, which must give back the same bytes. EK
 * certificates reach x509_verify_der from the network (the enroll message). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto-x509.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_ca_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBizCCATGgAwIBAgIUSVstyfb9MtV+0+tPZHxpMoQn/2QwCgYIKoZIzj0EAwIw\n"
	"EjEQMA4GA1UEAwwHZnV6eiBDQTAgFw0yNjExMjYxMjM3MTFaGA8yMTI2MTEwMjEy\n"
	"MzcxMVowEjEQMA4GA1UEAwwHZnV6eiBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
	"A0IABJibNXCsCfwVGdqxW9oae/VI3SHOR9QyFFeKhWRJdH2V4CU6J9npvy+CfwVS\n"
	"aU5t/Eh4SSRMW8xThx0ukExltBSjYzBhMB0GA1UdDgQWBBRXI4aYThl1hHJ29cxS\n"
	"6gaCH1F3lDAfBgNVHSMEGDAWgBRXI4aYThl1hHJ29cxS6gaCH1F3lDAPBgNVHRMB\n"
	"Af8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNIADBFAiBR+GHk\n"
	"oYXsoiIfTzHP2EZs0LJ4y7k0nRVWZI6WCzmVNAIhALY0Ua/OyrnsNV1If1wEJskv\n"
	"+yH0ENnx9O/uFdG3tBzt\n"
	"-----END CERTIFICATE-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *spki = NULL, *der = NULL;
	size_t spki_n = 0, der_n = 0;
	const char *reason = NULL;
	char *pem = NULL;
	int r;

	r = x509_verify_der(data, size, fuzz_ca_pem, &spki, &spki_n, &reason);
	if (r == 0) {
		if (!spki || spki_n == 0 || spki_n > size)
			abort(); /* the key comes from inside the certificate */
		free(spki);
	} else if (spki)
		abort(); /* outputs only on success */

	if (x509_der_to_pem(data, size, &pem) == 0) {
		if (x509_pem_to_der(pem, &der, &der_n) < 0 || der_n != size || memcmp(der, data, size) != 0)
			abort(); /* an accepted certificate must have exactly one encoding */
		free(der);
		free(pem);
	}
	return 0;
}
