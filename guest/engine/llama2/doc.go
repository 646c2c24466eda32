// Package llama2 is the appliance's built-in inference engine: a pure-Go
// implementation of Karpathy's llama2.c (run.c) that serves a llama2.c
// checkpoint and tokenizer.bin on the CPU, with no external server.
//
// The pieces follow run.c closely so that a checkpoint behaves here as it
// does there:
//
//   - checkpoint.go reads the checkpoint (7 int32 header, float32 weights in
//     run.c's order), memory-mapped, validated against the file's length;
//   - tokenizer.go reads tokenizer.bin and implements run.c's encode (dummy
//     prefix, UTF-8 grouping, byte fallback, merges by score) and decode;
//   - forward.go is run.c's forward pass (RMSNorm, RoPE, grouped-query
//     attention with a KV cache, SwiGLU), its matrix products spread over
//     goroutines by rows;
//   - sample.go is run.c's sampler (argmax, temperature, top-p) and its
//     xorshift* generator;
//   - engine.go implements engine.Engine around them, with chat.go's
//     Llama-2 chat template and stream.go's stop strings.
//
// The committed test model (testdata/) has random weights; see its README.
package llama2
