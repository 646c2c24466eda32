// Package authenticode computes the Authenticode digest of a PE/COFF image
// the way UEFI firmware measures a loaded image, and reads the digest that an
// image's own signature records.
//
// When firmware loads an EFI application (EV_EFI_BOOT_SERVICES_APPLICATION,
// TCG PC Client PFP 10.4.4; under TDX the same event goes to RTMR1), the event
// digest is the Authenticode hash of the file, not a hash of the file's
// bytes. Digest follows EDK2's MeasurePeImageAndExtend
// (SecurityPkg/Tcg/Tcg2Dxe/MeasureBootPeCoff.c, and its TDX copy
// OvmfPkg/Tcg/TdTcg2Dxe/MeasureBootPeCoff.c), which implements the steps of
// Microsoft's "Windows Authenticode Portable Executable Signature Format",
// "Calculating the PE Image Hash":
//
//  1. hash the file from its start up to the optional header's CheckSum;
//  2. skip the 4-byte CheckSum;
//  3. hash up to the Certificate Table data directory entry (index 4), skip
//     its 8 bytes, hash the rest of the headers up to SizeOfHeaders. Without
//     that entry (NumberOfRvaAndSizes <= 4) hash from after the CheckSum to
//     SizeOfHeaders;
//  4. set SUM_OF_BYTES_HASHED = SizeOfHeaders, then hash each section's raw
//     data (SizeOfRawData bytes at PointerToRawData), sections sorted by
//     PointerToRawData, sections with SizeOfRawData 0 skipped, adding each
//     size to SUM_OF_BYTES_HASHED;
//  5. if the file is longer than SUM_OF_BYTES_HASHED, hash the
//     FileSize - CertificateTable.Size - SUM_OF_BYTES_HASHED bytes that start
//     at file offset SUM_OF_BYTES_HASHED.
//
// Trailing data, precisely: EDK2 (like the Microsoft text) starts the
// trailing region at SUM_OF_BYTES_HASHED, not at the end of the last
// section, and takes its length from the certificate table's Size, not its
// offset, assuming the table ends the file. When the sections follow the
// headers without gaps (every signed kernel and most PE files) that is
// exactly the data between the last section and the certificate table. With
// gaps the region starts inside the sections and the gap bytes themselves
// are never hashed; Digest does what firmware does. EDK2 refuses to measure
// an image whose FileSize < CertificateTable.Size + SUM_OF_BYTES_HASHED
// (Digest: ErrMalformed).
//
// Padding: signers (sbsigntool, osslsigncode, pesign -P) pad an image to a
// multiple of 8 bytes before hashing, because the signed file carries that
// padding in front of its certificate table; dstack-mr's
// authenticode_sha384_hash pads the same way. Firmware hashes the file it
// loads as it is. For a signed image the two agree (the padding is in the
// file); for an unsigned image whose size is not a multiple of 8 they do
// not, and Digest follows the firmware.
//
// Digest is stricter than EDK2 on malformed input: where EDK2 would read
// outside the buffer or hash overlapping ranges (truncated headers, section
// data beyond the file, sections overlapping each other or the headers, a
// certificate table that does not end the file), Digest returns ErrMalformed
// with the expected and found values instead of predicting a number.
//
// Embedded parses the first attribute certificate (WIN_CERTIFICATE of type
// WIN_CERT_TYPE_PKCS_SIGNED_DATA) as PKCS#7 SignedData (RFC 2315) whose
// content is Microsoft's SpcIndirectDataContent, and returns the DigestInfo
// it carries: the digest the signer computed over the same ranges.
package authenticode
