"""The Verilog-2005 text of the NLI unit's pipeline (numerics §3), shared by both variants
that :mod:`hw_sim.rtl.emit` writes: the stage logic (:func:`core`), the FP16 helper functions
(:data:`FUNCTIONS`) and the normalize-and-round modules (:func:`norm_module`). The arithmetic
and why each step is exact are in emit's docstring; the table enters only through the
lookup expressions ``lk`` that :func:`core` receives."""

from __future__ import annotations

from nli.formats import FP16_NAN

MODULE = "nli_unit"
LATENCY = 14  # pipeline registers from x to y (see the stage list in emit's docstring)


# ----------------------------------------------------------------------------- helpers
def lit(width: int, v: int) -> str:
    """A signed Verilog literal of ``width`` bits."""
    assert -(1 << (width - 1)) <= v < (1 << (width - 1)), (width, v)
    return f"-{width}'sd{-v}" if v < 0 else f"{width}'sd{v}"


def norm_module(w: int, odd: bool = False) -> str:
    """``nli_unit_norm{w}``: RNE of a w-bit unsigned integer to 24 significant bits.
    value(n) ~= sig * 2^e; n = 0 gives sig = 0 (e is then meaningless). ``odd``
    (``nli_unit_norm{w}odd``): round to odd instead (truncate, then set the last bit if
    anything non-zero was dropped), so that a later RNE16 is the one correct rounding."""
    steps = []
    s = 1
    while s < w:
        s *= 2
    lines = [f"module {MODULE}_norm{w}{'odd' if odd else ''} (", f"  input  wire [{w - 1}:0] n,"]
    lines += ["  output wire [23:0] sig,", "  output wire signed [11:0] e", ");"]
    lines.append(f"  wire [{w - 1}:0] n_0 = n;")
    k = 0
    zs = []
    while s >= 1:
        if s < w:
            lines.append(f"  wire z_{k} = ~|n_{k}[{w - 1}:{w - s}];")
            lines.append(f"  wire [{w - 1}:0] n_{k + 1} = z_{k} ? (n_{k} << {s}) : n_{k};")
        else:  # a step as wide as the word: only n = 0 has all those bits zero
            lines.append(f"  wire z_{k} = ~|n_{k};")
            lines.append(f"  wire [{w - 1}:0] n_{k + 1} = n_{k};")
        zs.append((s, k))
        steps.append(s)
        s //= 2
        k += 1
    lz = " + ".join(f"(z_{j} ? 12'sd{s} : 12'sd0)" for s, j in zs)
    lines += [
        f"  wire signed [11:0] lz = {lz};",
        f"  wire [23:0] hi = n_{k}[{w - 1}:{w - 24}];",
        f"  wire rb = n_{k}[{w - 25}];",
        f"  wire st = |n_{k}[{w - 26}:0];",
        (
            "  wire [24:0] r = {2'b0, hi[23:1], hi[0] | rb | st};"
            if odd
            else "  wire [24:0] r = {1'b0, hi} + {24'd0, rb & (st | hi[0])};"
        ),
        "  assign sig = r[24] ? 24'h800000 : r[23:0];",
        f"  assign e = {lit(12, w - 24)} - lz + (r[24] ? 12'sd1 : 12'sd0);",
        "endmodule",
        "",
    ]
    return "\n".join(lines)


FUNCTIONS = """  // FP16 bits -> signed value in units of 2^-24 (exact; inf/NaN: never used)
  function signed [41:0] fix16;
    input [15:0] h;
    reg [40:0] m;
    begin
      if (h[14:10] == 5'd0) m = {31'd0, h[9:0]};
      else m = {30'd0, 1'b1, h[9:0]} << (h[14:10] - 5'd1);
      fix16 = h[15] ? -$signed({1'b0, m}) : $signed({1'b0, m});
    end
  endfunction
  // FP16 bits -> an order key: compares like the value, -0 == +0
  function signed [16:0] key16;
    input [15:0] h;
    key16 = h[15] ? -$signed({2'b0, h[14:0]}) : $signed({2'b0, h[14:0]});
  endfunction
  // |RNE16(s * 2^e)| as FP16 bits (s normalized: bit 23 set, or 0), +inf on overflow
  function [14:0] f16_mag;
    input [23:0] s;
    input signed [11:0] e;
    reg signed [11:0] l, ks;
    reg [4:0] k;
    reg [15:0] base, sum;
    begin
      l = e + 12'sd23;  // exponent of the leading bit
      ks = -e - 12'sd24;  // FP16-subnormal: shift to units of 2^-24
      if (l >= -12'sd14) begin k = 5'd13; base = {l[4:0] + 5'd14, 10'd0}; end
      else begin k = (ks > 12'sd25) ? 5'd25 : ks[4:0]; base = 16'd0; end
      sum = base + rne_shift(s, k);
      if (s == 24'd0) f16_mag = 15'd0;
      else if (l >= 12'sd16 || sum >= 16'h7c00) f16_mag = 15'h7c00;
      else f16_mag = sum[14:0];
    end
  endfunction
  // a finite FP16 magnitude as sig * 2^exp
  function [10:0] f16_sig;
    input [14:0] h;
    f16_sig = (h[14:10] == 5'd0) ? {1'b0, h[9:0]} : {1'b1, h[9:0]};
  endfunction
  function signed [11:0] f16_exp;
    input [14:0] h;
    f16_exp = ((h[14:10] == 5'd0) ? 12'sd1 : $signed({7'd0, h[14:10]})) - 12'sd25;
  endfunction
  // round v / 2^k to nearest, ties to even (k = 13..25)
  function [23:0] rne_shift;
    input [23:0] v;
    input [4:0] k;
    reg [24:0] q, rem, half;
    begin
      q = {1'b0, v} >> k;
      rem = {1'b0, v} - (q << k);
      half = 25'd1 << (k - 5'd1);
      rne_shift = q[23:0] + ((rem > half || (rem == half && q[0])) ? 24'd1 : 24'd0);
    end
  endfunction
"""


# ----------------------------------------------------------------------------- the pipeline
def core(k: int, iw: int, lk: dict, fp16: bool) -> str:
    """The pipeline body shared by both variants. ``lk`` maps each table lookup to Verilog
    text with a ``{}`` for the index: cut (order key of c_i, i a genvar), cfix, mulsig,
    mulexp, top, base (by interval), lut (by entry), below, above (no index). ``fp16``: the
    fp16 unit's roundings (numerics §3, steps 4', 5', 8', 9'/10')."""
    if fp16:  # dx = RNE16(x - c_I) = RNE16(RNE32(x - c_I)) (numerics §7), times RNE16(mul)
        dx_round = """wire [14:0] s3_dx16 = f16_mag(s3_dxs, s3_dxe - 12'sd24);
  wire [23:0] s3_ds = {13'd0, f16_sig(s3_dx16)};
  wire signed [11:0] s3_de = f16_exp(s3_dx16);
  wire s3_inf = s3_dx16 == 15'h7c00;"""
        u_round = """wire [14:0] s5_u16 = f16_mag(s5_us0, s5_pe0 + r4_e);  // u = RNE16(dx * mul16)
  wire s5_inf = r4_inf || s5_u16 == 15'h7c00;
  wire [23:0] s5_us = {f16_sig(s5_u16), 13'd0};
  wire signed [11:0] s5_eu = f16_exp(s5_u16) - 12'sd13;"""
        dy_round = """wire [14:0] s9_dy16 = f16_mag(s9_dys0, s9_dye0 - 12'sd24);  // RNE16(y1 - y0)
  wire [23:0] s9_dys = {13'd0, f16_sig(s9_dy16)};
  wire signed [11:0] s9_dye = f16_exp(s9_dy16);"""
        norm70 = "norm70odd"  # round to odd at 24 bits, then RNE16: one rounding (§8)
    else:
        dx_round = """wire [23:0] s3_ds = s3_dxs;
  wire signed [11:0] s3_de = s3_dxe - 12'sd24;
  wire s3_inf = 1'b0;"""
        u_round = """wire [23:0] s5_us = s5_us0;  // u = RNE32(dx * mul)
  wire signed [11:0] s5_eu = s5_pe0 + r4_e;
  wire s5_inf = 1'b0;"""
        dy_round = """wire [23:0] s9_dys = s9_dys0;
  wire signed [11:0] s9_dye = s9_dye0 - 12'sd24;"""
        norm70 = "norm70"
    return f"""
  // ---- stage 1: NaN, below/above and the interval I (K+1 comparators, one-hot, OR-encode)
  wire signed [16:0] xk = key16(x);
  wire [{k}:0] ge;
  genvar gi;
  generate
    for (gi = 0; gi <= {k}; gi = gi + 1) begin : cmp
      assign ge[gi] = xk >= {lk["cut"].format("gi")};
    end
  endgenerate
  reg [{iw - 1}:0] s1_i;
  integer i;
  always @* begin
    s1_i = {iw}'d0;
    for (i = 0; i < {k}; i = i + 1)
      if (ge[i] && !ge[i + 1]) s1_i = s1_i | i[{iw - 1}:0];
  end
  wire s1_nan = (x[14:10] == 5'h1f) && (x[9:0] != 10'd0);
  wire s1_sp = s1_nan || !ge[0] || ge[{k}];  // special: the output is a constant
  wire [15:0] s1_spv = s1_nan ? 16'h{FP16_NAN:04x} : (!ge[0] ? {lk["below"]} : {lk["above"]});

  reg [15:0] r1_x; reg [{iw - 1}:0] r1_i; reg r1_sp; reg [15:0] r1_spv;

  // ---- stage 2: x - c_I, exact (an integer in units of 2^-24, >= 0 in range)
  wire signed [41:0] s2_d = fix16(r1_x) - {lk["cfix"].format("r1_i")};
  reg [40:0] r2_d; reg [{iw - 1}:0] r2_i; reg r2_sp; reg [15:0] r2_spv;

  // ---- stage 3: dx = RNE32(x - c_I), and the interval's constants
  wire [23:0] s3_dxs; wire signed [11:0] s3_dxe;
  {MODULE}_norm41 u_dx (.n(r2_d), .sig(s3_dxs), .e(s3_dxe));
  {dx_round}
  reg [23:0] r3_dxs, r3_ms; reg signed [11:0] r3_e; reg [15:0] r3_top, r3_base; reg r3_inf;
  reg r3_sp; reg [15:0] r3_spv;

  // ---- stage 4: the exact product dx * mul
  reg [47:0] r4_p; reg signed [11:0] r4_e; reg [15:0] r4_top, r4_base; reg r4_inf;
  reg r4_sp; reg [15:0] r4_spv;

  // ---- stage 5: u = RNE32(dx * mul) = us * 2^eu
  wire [23:0] s5_us0; wire signed [11:0] s5_pe0;
  {MODULE}_norm48 u_u (.n(r4_p), .sig(s5_us0), .e(s5_pe0));
  {u_round}
  reg [23:0] r5_us; reg signed [11:0] r5_eu; reg [15:0] r5_top, r5_base; reg r5_inf;
  reg r5_sp; reg [15:0] r5_spv;

  // ---- stage 6: a = min(floor(u), bins - 1), t = u - a (exact, t = tint * 2^eu), g
  wire signed [11:0] s6_f = -r5_eu;
  wire s6_frac = (r5_us == 24'd0) || (s6_f >= 12'sd24);  // u < 1 (or u = 0): a = 0
  wire [16:0] s6_araw = s6_frac ? 17'd0 : ({{17'd0, r5_us}} >> s6_f[4:0]);
  wire [16:0] s6_a = (r5_inf || s6_araw > {{1'b0, r5_top}}) ? {{1'b0, r5_top}} : s6_araw;
  wire [40:0] s6_ash = {{24'd0, s6_a}} << s6_f[4:0];
  wire [23:0] s6_t = s6_frac ? r5_us : (r5_us - s6_ash[23:0]);
  wire [15:0] s6_g = r5_base + s6_a[15:0];
  reg [15:0] r6_g; reg [23:0] r6_t; reg signed [11:0] r6_e; reg r6_inf;
  reg r6_sp; reg [15:0] r6_spv;

  // ---- stage 7: y0 = lut[g], y1 = lut[g + 1]
  reg [15:0] r7_y0, r7_y1; reg [23:0] r7_t; reg signed [11:0] r7_e; reg r7_inf;
  reg r7_sp; reg [15:0] r7_spv;

  // ---- stage 8: y1 - y0, exact: sign and magnitude
  wire signed [41:0] s8_dy = fix16(r7_y1) - fix16(r7_y0);
  wire s8_neg = s8_dy < 0;
  wire [41:0] s8_mag = s8_neg ? -s8_dy : s8_dy;
  reg [40:0] r8_mag; reg r8_neg, r8_dyz; reg [15:0] r8_y0; reg [23:0] r8_t;
  reg signed [11:0] r8_e; reg r8_inf, r8_sp; reg [15:0] r8_spv;

  // ---- stage 9: dy = RNE32(y1 - y0)
  wire [23:0] s9_dys0; wire signed [11:0] s9_dye0;
  {MODULE}_norm41 u_dy (.n(r8_mag), .sig(s9_dys0), .e(s9_dye0));
  {dy_round}
  reg [23:0] r9_t, r9_dys; reg signed [11:0] r9_e; reg r9_neg; reg [15:0] r9_y0;
  reg r9_inf, r9_dyz;
  reg r9_sp; reg [15:0] r9_spv;

  // ---- stage 10: the exact product t * |dy|
  reg [47:0] r10_p; reg signed [11:0] r10_e; reg r10_neg; reg [15:0] r10_y0; reg r10_inf, r10_dyz;
  reg r10_sp; reg [15:0] r10_spv;

  // ---- stage 11: |p| = RNE32(t * |dy|) = ps * 2^ep
  wire [23:0] s11_ps; wire signed [11:0] s11_pe;
  {MODULE}_norm48 u_p (.n(r10_p), .sig(s11_ps), .e(s11_pe));
  reg [23:0] r11_ps; reg signed [11:0] r11_ep; reg r11_neg; reg [15:0] r11_y0; reg r11_inf, r11_dyz;
  reg r11_sp; reg [15:0] r11_spv;

  // ---- stage 12: y0 + p in units of 2^-51, the last bit sticky for p below 2^-50
  wire signed [41:0] s12_y0f = fix16(r11_y0);
  wire [69:0] s12_ym = {{1'b0, (s12_y0f < 0 ? -s12_y0f : s12_y0f), 27'd0}};
  wire signed [11:0] s12_sh = r11_ep + 12'sd50;
  wire signed [11:0] s12_k = -s12_sh;
  wire [4:0] s12_kc = (s12_k > 12'sd24) ? 5'd24 : s12_k[4:0];
  wire [23:0] s12_lo = r11_ps & ~(24'hffffff << s12_kc);
  wire [69:0] s12_pm = (s12_sh >= 0) ? ({{45'd0, r11_ps, 1'b0}} << s12_sh[5:0])
                                     : {{45'd0, r11_ps >> s12_kc, |s12_lo}};
  wire s12_sy = r11_y0[15];
  wire s12_ybig = s12_ym >= s12_pm;
  wire [69:0] s12_m = (s12_sy == r11_neg) ? s12_ym + s12_pm
                    : (s12_ybig ? s12_ym - s12_pm : s12_pm - s12_ym);
  wire s12_sign = (s12_m == 70'd0) ? (s12_sy & r11_neg)
                : ((s12_sy == r11_neg || s12_ybig) ? s12_sy : r11_neg);
  reg [69:0] r12_m; reg r12_sign; reg r12_sp; reg [15:0] r12_spv; reg r12_inf, r12_dyz, r12_neg;

  // ---- stage 13: s = RNE32(y0 + p) = ss * 2^(se - 51)
  wire [23:0] s13_ss; wire signed [11:0] s13_se;
  {MODULE}_{norm70} u_s (.n(r12_m), .sig(s13_ss), .e(s13_se));
  reg [23:0] r13_ss; reg signed [11:0] r13_se; reg r13_sign; reg r13_sp; reg [15:0] r13_spv;
  reg r13_inf, r13_dyz, r13_neg;

  // ---- stage 14: y = RNE16(s); the leading bit of s has exponent L = se - 28
  wire [14:0] s14_mag = f16_mag(r13_ss, r13_se - 12'sd51);
  // fp16 unit only: t = inf (dx or u overflowed): y = inf with dy's sign, NaN if dy = 0
  wire [15:0] s14_y = !r13_inf ? {{r13_sign, s14_mag}}
                    : (r13_dyz ? 16'h{FP16_NAN:04x} : {{r13_neg, 15'h7c00}});
  reg [15:0] r14_y;

  reg [{LATENCY - 1}:0] v;
  assign out_valid = v[{LATENCY - 1}];
  assign y = r14_y;

  always @(posedge clk) begin
    if (rst) v <= {LATENCY}'d0;
    else v <= {{v[{LATENCY - 2}:0], in_valid}};
    r1_x <= x; r1_i <= s1_i; r1_sp <= s1_sp; r1_spv <= s1_spv;
    r2_d <= s2_d[40:0];
    r2_i <= r1_i; r2_sp <= r1_sp; r2_spv <= r1_spv;
    r3_dxs <= s3_ds; r3_inf <= s3_inf; r3_ms <= {lk["mulsig"].format("r2_i")};
    r3_e <= s3_de + {lk["mulexp"].format("r2_i")};
    r3_top <= {lk["top"].format("r2_i")}; r3_base <= {lk["base"].format("r2_i")};
    r3_sp <= r2_sp; r3_spv <= r2_spv;
    r4_p <= r3_dxs * r3_ms; r4_e <= r3_e; r4_top <= r3_top; r4_base <= r3_base; r4_inf <= r3_inf;
    r4_sp <= r3_sp; r4_spv <= r3_spv;
    r5_us <= s5_us; r5_eu <= s5_eu; r5_inf <= s5_inf; r5_top <= r4_top; r5_base <= r4_base;
    r5_sp <= r4_sp; r5_spv <= r4_spv;
    r6_g <= s6_g; r6_t <= s6_t; r6_e <= r5_eu; r6_inf <= r5_inf; r6_sp <= r5_sp; r6_spv <= r5_spv;
    r7_y0 <= {lk["lut"].format("r6_g")}; r7_y1 <= {lk["lut"].format("r6_g + 16'd1")};
    r7_t <= r6_t; r7_e <= r6_e; r7_inf <= r6_inf; r7_sp <= r6_sp; r7_spv <= r6_spv;
    r8_mag <= s8_mag[40:0]; r8_neg <= s8_neg; r8_dyz <= s8_mag == 42'd0; r8_y0 <= r7_y0;
    r8_t <= r7_t; r8_e <= r7_e; r8_inf <= r7_inf; r8_sp <= r7_sp; r8_spv <= r7_spv;
    r9_t <= r8_t; r9_dys <= s9_dys; r9_e <= r8_e + s9_dye; r9_neg <= r8_neg;
    r9_inf <= r8_inf; r9_dyz <= r8_dyz;
    r9_y0 <= r8_y0; r9_sp <= r8_sp; r9_spv <= r8_spv;
    r10_p <= r9_t * r9_dys; r10_e <= r9_e; r10_neg <= r9_neg; r10_y0 <= r9_y0;
    r10_inf <= r9_inf; r10_dyz <= r9_dyz;
    r10_sp <= r9_sp; r10_spv <= r9_spv;
    r11_ps <= s11_ps; r11_ep <= s11_pe + r10_e; r11_neg <= r10_neg; r11_y0 <= r10_y0;
    r11_inf <= r10_inf; r11_dyz <= r10_dyz;
    r11_sp <= r10_sp; r11_spv <= r10_spv;
    r12_m <= s12_m; r12_sign <= s12_sign; r12_inf <= r11_inf; r12_dyz <= r11_dyz;
    r12_neg <= r11_neg; r12_sp <= r11_sp; r12_spv <= r11_spv;
    r13_ss <= s13_ss; r13_se <= s13_se; r13_sign <= r12_sign; r13_sp <= r12_sp;
    r13_spv <= r12_spv; r13_inf <= r12_inf; r13_dyz <= r12_dyz; r13_neg <= r12_neg;
    r14_y <= r13_sp ? r13_spv : s14_y;
  end
"""
