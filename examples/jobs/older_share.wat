;; A WASM job's guest: per person, [their income, 1 if they are 65 or older].
;; The host clamps each to the manifest's bounds, sums over persons and adds
;; noise. Built to older_share.wasm (a test checks the two agree).
(module
  (import "sluice" "read_rows" (func $read_rows (param i32 i32) (result i32)))
  (import "sluice" "emit" (func $emit (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "map")
    ;; Columns are [income, age]; one row per person in PUMS.
    (if (i32.lt_s (call $read_rows (i32.const 64) (i32.const 2)) (i32.const 2))
      (then return))
    (f64.store (i32.const 0) (f64.load (i32.const 64)))
    (f64.store (i32.const 8)
      (select (f64.const 1) (f64.const 0)
        (f64.ge (f64.load (i32.const 72)) (f64.const 65))))
    (drop (call $emit (i32.const 0) (i32.const 2)))))
