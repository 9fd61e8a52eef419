package peer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrFrame reports a sync or query stream frame that breaks the protocol:
// too large, truncated, or of a type not expected at that point.
var ErrFrame = errors.New("peer: bad frame")

// Frames are [uvarint n][type byte][n-1 bytes of payload]. The length is
// checked against the reader's limit before anything is allocated.

func writeFrame(w *bufio.Writer, typ byte, payload []byte) error {
	var head [binary.MaxVarintLen64 + 1]byte
	n := binary.PutUvarint(head[:], uint64(len(payload)+1))
	head[n] = typ
	if _, err := w.Write(head[:n+1]); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one frame whose payload is at most max bytes.
func readFrame(r *bufio.Reader, max int) (byte, []byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, io.EOF
		}
		return 0, nil, fmt.Errorf("%w: length: %v", ErrFrame, err)
	}
	if n == 0 || n-1 > uint64(max) {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrame, n, max+1)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated: %v", ErrFrame, err)
	}
	return buf[0], buf[1:], nil
}
