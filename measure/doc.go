// Package measure predicts what Intel TDX (MRTD, RTMR0-3) and a vTPM (PCRs)
// will measure for an image built by image/build, computes the image hash
// that registries allowlist, and verifies and validates quotes against a
// policy. See the project's DESIGN notes; the code arrives with its issue.
package measure
