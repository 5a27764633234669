/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Test keys generated once for these tests with OpenSSL 3 (openssl ecparam/genpkey/pkcs8/ec);
 * they protect nothing. */

static const char P384_PRIVATE_PEM[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MIGkAgEBBDD0FDVbDU4wS18HyGWcGITQfKZQq2V4SvxFQURrgPkgRXxRpGhrisP1\n"
	"kWfHidzrkAigBwYFK4EEACKhZANiAATbplveWTF86Q8TVMTcSbOT36N4rOBXhINa\n"
	"K64Hjl3w77J4hvxdARRT91hnsjgc2os4TUNzClWyc8fymoZAWUbUHoAe0KGscMJc\n"
	"5nwOWQ8PCMSRSuYKtlHHtjmg3L07zEw=\n"
	"-----END EC PRIVATE KEY-----\n";

static const char P384_PUBLIC_PEM[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE26Zb3lkxfOkPE1TE3Emzk9+jeKzgV4SD\n"
	"WiuuB45d8O+yeIb8XQEUU/dYZ7I4HNqLOE1DcwpVsnPH8pqGQFlG1B6AHtChrHDC\n"
	"XOZ8DlkPDwjEkUrmCrZRx7Y5oNy9O8xM\n"
	"-----END PUBLIC KEY-----\n";

static const char RSA_PRIVATE_PEM[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAOJWhtUX7EucrWwE\n"
	"6mIzTXEFsmL4M2SeCytUvI1+mE85hNGHbS+/9XqM1/MXLzDJN5U9zWU2allbpdzz\n"
	"g7jvBNzYZrPeSwlwj3G+gsQgXlETf3UWyWDOndB19rWyQo2U8idHVwiUTd3XC8oQ\n"
	"+sRQwfeiVhZGPUgyXC9TPjp+2Hl7AgMBAAECgYBlRQfBEpokXq7tlOl2FLRCrKTb\n"
	"SWhdTaV7tsdCm/D0Ca1Wvrxoz/+63IfG+Ymgz3cyLFvZPFarMqlsyfwW48MNYcgi\n"
	"3irdA/WVWl0BTfyFqjKXleTVAIEoz4Z7ll79mJtlOZpY7EH5W2HRe5716ipvSORw\n"
	"Sx5zXteoIg8vQGUveQJBAPVOqzzD7Nu6nM7Un983QJMdO1h22lBohYiSa4YGrgx0\n"
	"RDc1lj+Vxlvhzy7gYx1r1WUm4gi/7Lx4GHz5mqtoAF0CQQDsNC70XRmASJxmI6M2\n"
	"F77o/Q0rt/2Jfr9A0zvonvr55ieswb+ouTHyy17TDE07rfu6AS0RVXSOxbC6tB3s\n"
	"CaO3AkEA9KBF/Wv46UpYk53P7F6CI/MTum2T2nnRKFezqE1DBiJv4Iqs0a3/yKMP\n"
	"5FRaIv3lKWE0KbuTToOJECAuEN6+9QJAUlfy0o+uNzGZDGZ6HH50uIaXU9llksxT\n"
	"4kaBiRv7RKk+xZQZu7ksN4c8fHi6aAbETdjhHDzdUHSMotnt4H6PywJBAI2MSuUn\n"
	"ROZuwyGBVgQSxSfj7BiRUeuXyKTss29GbA+bB2ORqc8i1xR+cnd9TTE6E8ZcnCZv\n"
	"RYZFJpccIgj1o8I=\n"
	"-----END PRIVATE KEY-----\n";

static const char RSA_PUBLIC_PEM[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDiVobVF+xLnK1sBOpiM01xBbJi\n"
	"+DNkngsrVLyNfphPOYTRh20vv/V6jNfzFy8wyTeVPc1lNmpZW6Xc84O47wTc2Gaz\n"
	"3ksJcI9xvoLEIF5RE391Fslgzp3Qdfa1skKNlPInR1cIlE3d1wvKEPrEUMH3olYW\n"
	"Rj1IMlwvUz46fth5ewIDAQAB\n"
	"-----END PUBLIC KEY-----\n";

static const char SECP256K1_PRIVATE_PEM[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MHQCAQEEILIRhmPY+QgJWAenzRucS6dFojnZHQlSURgOim8v8qC+oAcGBSuBBAAK\n"
	"oUQDQgAE5r3+M50IkrtU0XiNL316i7IKmCQS42KkKc5Nke1/o6SqwDwCC7z4FWci\n"
	"C2wqxmrAvjIaINcOf7rsgODc945U9A==\n"
	"-----END EC PRIVATE KEY-----\n";

static const char SECP256K1_PUBLIC_PEM[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE5r3+M50IkrtU0XiNL316i7IKmCQS42Kk\n"
	"Kc5Nke1/o6SqwDwCC7z4FWciC2wqxmrAvjIaINcOf7rsgODc945U9A==\n"
	"-----END PUBLIC KEY-----\n";

static const char P256_SEC1_WITH_PARAMS_PEM[] =
	"-----BEGIN EC PARAMETERS-----\n"
	"BggqhkjOPQMBBw==\n"
	"-----END EC PARAMETERS-----\n"
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MHcCAQEEILiGoBpT2zdaHgq29JGLlOKUakgwS30myFDXgU6j9NOooAoGCCqGSM49\n"
	"AwEHoUQDQgAEq7qxxjbchPKu+696myUWDxYAlje+w5eqpYp7s9o2rhhOwYhoHqZF\n"
	"3Hpa2kowH3+WQZMx5KX86Tz66sD2CJABLg==\n"
	"-----END EC PRIVATE KEY-----\n";

static const char P256_PKCS8_PEM[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQguIagGlPbN1oeCrb0\n"
	"kYuU4pRqSDBLfSbIUNeBTqP006ihRANCAASrurHGNtyE8q77r3qbJRYPFgCWN77D\n"
	"l6qlinuz2jauGE7BiGgepkXcelraSjAff5ZBkzHkpfzpPPrqwPYIkAEu\n"
	"-----END PRIVATE KEY-----\n";

static const char P256_PUBLIC_PEM[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEq7qxxjbchPKu+696myUWDxYAlje+\n"
	"w5eqpYp7s9o2rhhOwYhoHqZF3Hpa2kowH3+WQZMx5KX86Tz66sD2CJABLg==\n"
	"-----END PUBLIC KEY-----\n";

static const char P256_ENCRYPTED_PKCS8_PEM[] =
	"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
	"MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAiF0MUZ9QGc+AICCAAw\n"
	"DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEAX4+Wv/hKTReDM2OsUZlV8EgZB9\n"
	"V+agKPeWFMqb18YFao/X71or/VIQuquAmBpsdyhuDRpn5p2B6V/z20sxwaDJGBlg\n"
	"NJXcoPpIU3UMC5EL5GQNX7aA23k0y0Oxbc3wSoH610eBA//I43EsIge5URVDe/JI\n"
	"JgOaUuhbNjB5JO/eo2WEjYwnybNcQMqTTEzHzI4o8Olut/guENCYqeIHHAyZQRg=\n"
	"-----END ENCRYPTED PRIVATE KEY-----\n";

static const char P256_EXPLICIT_PRIVATE_PEM[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MIIBaAIBAQQgCSSF1y/3jSxEMkR4fHQUsSFTIXLLKwX04ITgeCqEtWqggfowgfcC\n"
	"AQEwLAYHKoZIzj0BAQIhAP////8AAAABAAAAAAAAAAAAAAAA////////////////\n"
	"MFsEIP////8AAAABAAAAAAAAAAAAAAAA///////////////8BCBaxjXYqjqT57Pr\n"
	"vVV2mIa8ZR0GsMxTsPY7zjw+J9JgSwMVAMSdNgiG5wSTamZ44ROdJreBn36QBEEE\n"
	"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpZP40Li/hp/m47n60p8D54W\n"
	"K84zV2sxXs7LtkBoN79R9QIhAP////8AAAAA//////////+85vqtpxeehPO5ysL8\n"
	"YyVRAgEBoUQDQgAE9yZ9g0t3X1T10CNI82aqQpb0XagnPCaqQBOLHyj5v8hUsucj\n"
	"T91ihnOKhJ4n28gur4EpCBN6Z4dRrQKGMeO0ng==\n"
	"-----END EC PRIVATE KEY-----\n";

static const char P256_EXPLICIT_PUBLIC_PEM[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MIIBSzCCAQMGByqGSM49AgEwgfcCAQEwLAYHKoZIzj0BAQIhAP////8AAAABAAAA\n"
	"AAAAAAAAAAAA////////////////MFsEIP////8AAAABAAAAAAAAAAAAAAAA////\n"
	"///////////8BCBaxjXYqjqT57PrvVV2mIa8ZR0GsMxTsPY7zjw+J9JgSwMVAMSd\n"
	"NgiG5wSTamZ44ROdJreBn36QBEEEaxfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5\n"
	"RdiYwpZP40Li/hp/m47n60p8D54WK84zV2sxXs7LtkBoN79R9QIhAP////8AAAAA\n"
	"//////////+85vqtpxeehPO5ysL8YyVRAgEBA0IABPcmfYNLd19U9dAjSPNmqkKW\n"
	"9F2oJzwmqkATix8o+b/IVLLnI0/dYoZzioSeJ9vILq+BKQgTemeHUa0ChjHjtJ4=\n"
	"-----END PUBLIC KEY-----\n";

static const char P256_COMPRESSED_PUBLIC_PEM[] =
	"-----BEGIN PUBLIC KEY-----\n"
	"MDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgACq7qxxjbchPKu+696myUWDxYAlje+\n"
	"w5eqpYp7s9o2rhg=\n"
	"-----END PUBLIC KEY-----\n";
