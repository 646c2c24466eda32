package verity

import "os"

// FormatFile runs Format over the whole file dataPath, writing the hash
// file hashPath (created or truncated).
func FormatFile(dataPath, hashPath string, p Params) (Result, error) {
	data, err := os.Open(dataPath)
	if err != nil {
		return Result{}, err
	}
	defer data.Close()
	st, err := data.Stat()
	if err != nil {
		return Result{}, err
	}
	hash, err := os.Create(hashPath)
	if err != nil {
		return Result{}, err
	}
	res, err := Format(data, st.Size(), hash, p)
	if cerr := hash.Close(); err == nil {
		err = cerr
	}
	return res, err
}

// VerifyFile runs Verify over the files dataPath and hashPath.
func VerifyFile(dataPath, hashPath string, rootHash []byte) error {
	data, err := os.Open(dataPath)
	if err != nil {
		return err
	}
	defer data.Close()
	st, err := data.Stat()
	if err != nil {
		return err
	}
	hash, err := os.Open(hashPath)
	if err != nil {
		return err
	}
	defer hash.Close()
	return Verify(data, st.Size(), hash, rootHash)
}
