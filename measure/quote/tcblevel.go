package quote

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/google/go-tdx-guest/pcs"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// checkTDQuoteBody is go-tdx-guest's verifyTdQuoteBody: the TCB info is for
// this platform (FMSPC and PCE-ID of the PCK certificate), the TDX module
// signer and SEAM attributes match it, and the platform's TCB level in it is
// UpToDate (PCS API v4, TCB Info V3: tdxModule, tcbLevels, and
// tdxModuleIdentities for TDX module versions above 0).
func checkTDQuoteBody(b *pb.TDQuoteBody, t *pcs.TcbInfo, ext *pcs.PckExtensions) error {
	if ext.FMSPC != t.Fmspc {
		return collErr("TCB info is for FMSPC %q, the PCK certificate's is %q", t.Fmspc, ext.FMSPC)
	}
	if ext.PCEID != t.PceID {
		return collErr("TCB info is for PCE-ID %q, the PCK certificate's is %q", t.PceID, ext.PCEID)
	}
	if !bytes.Equal(t.TdxModule.Mrsigner.Bytes, b.GetMrSignerSeam()) {
		return collErr("quote MRSIGNERSEAM = %x, want the TCB info's tdxModule.mrsigner %x", b.GetMrSignerSeam(), t.TdxModule.Mrsigner.Bytes)
	}
	mask, attr := t.TdxModule.AttributesMask.Bytes, b.GetSeamAttributes()
	if len(mask) != len(attr) {
		return collErr("TCB info tdxModule.attributesMask is %d bytes, quote SEAMATTRIBUTES %d", len(mask), len(attr))
	}
	if got := and(mask, attr); !bytes.Equal(t.TdxModule.Attributes.Bytes, got) {
		return collErr("quote SEAMATTRIBUTES & mask = %x, want the TCB info's tdxModule.attributes %x", got, t.TdxModule.Attributes.Bytes)
	}
	return tdxTCBStatus(t, b.GetTeeTcbSvn(), ext)
}

func and(mask, v []byte) []byte {
	out := make([]byte, len(mask))
	for i := range mask {
		out[i] = mask[i] & v[i]
	}
	return out
}

func tcbStatusErr(format string, a ...any) error {
	return fmt.Errorf("quote: %w: %s", ErrTCBStatus, fmt.Sprintf(format, a...))
}

// tdxTCBStatus is go-tdx-guest's checkTcbInfoTcbStatus. The TCB level is
// the first of tcbLevels (PCS sorts them, highest first) with every SGX TCB
// component SVN of the PCK certificate >= the level's sgxtcbcomponents,
// PCESVN >= its pcesvn, and TEE_TCB_SVN >= its tdxtcbcomponents, from index
// 2 when TEE_TCB_SVN[1] (the TDX module major version) is not 0: those
// components are then judged by the tdxModuleIdentities entry "TDX_<major,
// hex>", whose first level with isvsvn <= TEE_TCB_SVN[0] must be UpToDate.
func tdxTCBStatus(t *pcs.TcbInfo, svn []byte, ext *pcs.PckExtensions) error {
	var level *pcs.TcbLevel
	for i := range t.TcbLevels {
		l := &t.TcbLevels[i]
		if atLeast(ext.TCB.CPUSvnComponents, l.Tcb.SgxTcbcomponents, 0) &&
			ext.TCB.PCESvn >= l.Tcb.Pcesvn &&
			atLeast(svn, l.Tcb.TdxTcbcomponents, tdxFrom(svn)) {
			level = l
			break
		}
	}
	if level == nil {
		return tcbStatusErr("no TCB level in the TCB info for PCK CPUSVN components %x, PCESVN %d, TEE_TCB_SVN %x", ext.TCB.CPUSvnComponents, ext.TCB.PCESvn, svn)
	}
	if svn[1] > 0 {
		id := "TDX_" + hex.EncodeToString(svn[1:2])
		var ident *pcs.TdxModuleIdentity
		for i := range t.TdxModuleIdentities {
			if t.TdxModuleIdentities[i].ID == id {
				ident = &t.TdxModuleIdentities[i]
				break
			}
		}
		if ident == nil {
			return tcbStatusErr("no TDX module identity %q in the TCB info", id)
		}
		var ml *pcs.TcbLevel
		for i := range ident.TcbLevels {
			if uint32(svn[0]) >= ident.TcbLevels[i].Tcb.Isvsvn {
				ml = &ident.TcbLevels[i]
				break
			}
		}
		if ml == nil {
			return tcbStatusErr("no TCB level of TDX module identity %q for TDX module SVN %d", id, svn[0])
		}
		if ml.TcbStatus != pcs.TcbComponentStatusUpToDate {
			return tcbStatusErr("TDX module %s SVN %d is %q, want %q", id, svn[0], ml.TcbStatus, pcs.TcbComponentStatusUpToDate)
		}
	}
	if level.TcbStatus != pcs.TcbComponentStatusUpToDate {
		return tcbStatusErr("platform TCB level (tcbDate %s) is %q, want %q", level.TcbDate, level.TcbStatus, pcs.TcbComponentStatusUpToDate)
	}
	return nil
}

func tdxFrom(svn []byte) int {
	if svn[1] > 0 {
		return 2
	}
	return 0
}

// atLeast: v[i] >= c[i].Svn for i >= from; false if the lengths differ.
func atLeast(v []byte, c []pcs.TcbComponent, from int) bool {
	if len(v) != len(c) {
		return false
	}
	for i := from; i < len(v); i++ {
		if v[i] < c[i].Svn {
			return false
		}
	}
	return true
}

// checkQEReport is go-tdx-guest's verifyQeReport: the QE report (an SGX
// REPORT body: MISCSELECT, ATTRIBUTES, MRSIGNER, ISVPRODID, ISVSVN) matches
// Intel's signed TD_QE identity (PCS API v4, Enclave Identity V2: miscselect
// and attributes under their masks, mrsigner, isvprodid), and the first of
// its tcbLevels with isvsvn <= the report's ISVSVN is UpToDate.
func checkQEReport(r *pb.EnclaveReport, e *pcs.EnclaveIdentity) error {
	if n := len(e.MiscselectMask.Bytes); n != 4 {
		return collErr("QE identity miscselectMask is %d bytes, want 4", n)
	}
	if n := len(e.Miscselect.Bytes); n != 4 {
		return collErr("QE identity miscselect is %d bytes, want 4", n)
	}
	mask := binary.LittleEndian.Uint32(e.MiscselectMask.Bytes)
	want := binary.LittleEndian.Uint32(e.Miscselect.Bytes)
	if got := r.GetMiscSelect() & mask; got != want {
		return collErr("QE report MISCSELECT & mask = %#x, want the QE identity's %#x", got, want)
	}
	amask, attr := e.AttributesMask.Bytes, r.GetAttributes()
	if len(amask) != len(attr) {
		return collErr("QE identity attributesMask is %d bytes, QE report ATTRIBUTES %d", len(amask), len(attr))
	}
	if got := and(amask, attr); !bytes.Equal(e.Attributes.Bytes, got) {
		return collErr("QE report ATTRIBUTES & mask = %x, want the QE identity's %x", got, e.Attributes.Bytes)
	}
	if !bytes.Equal(e.Mrsigner.Bytes, r.GetMrSigner()) {
		return collErr("QE report MRSIGNER = %x, want the QE identity's %x", r.GetMrSigner(), e.Mrsigner.Bytes)
	}
	if r.GetIsvProdId() != uint32(e.IsvProdID) {
		return collErr("QE report ISVPRODID = %d, want the QE identity's %d", r.GetIsvProdId(), e.IsvProdID)
	}
	for _, l := range e.TcbLevels {
		if l.Tcb.Isvsvn <= r.GetIsvSvn() {
			if l.TcbStatus != pcs.TcbComponentStatusUpToDate {
				return tcbStatusErr("QE ISVSVN %d is %q in the QE identity, want %q", r.GetIsvSvn(), l.TcbStatus, pcs.TcbComponentStatusUpToDate)
			}
			return nil
		}
	}
	return tcbStatusErr("no TCB level in the QE identity for QE ISVSVN %d", r.GetIsvSvn())
}
