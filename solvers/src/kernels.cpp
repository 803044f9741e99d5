// Native kernels of trimpomdp's generic POMDP solvers (SARSOP-style, point-based).
//
// Each function mirrors one numpy reference in trimpomdp/solvers/_kernels.py and is checked
// against it by tests/solvers/test_kernels.py. Arrays are C-contiguous float64 / int64; the GIL
// is released while the loops run. Beliefs and alpha supports are exploited: work is
// proportional to non-zeros, not to |S|.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

namespace py = pybind11;
using darr = py::array_t<double, py::array::c_style | py::array::forcecast>;
using iarr = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using barr = py::array_t<bool, py::array::c_style>;

namespace {

constexpr int ABI = 1;

void need(bool ok, const char* msg) {
    if (!ok) throw std::invalid_argument(msg);
}

// Best alpha vector (index, value) for sparse rows given by (cols, vals).
inline void best_row(const std::int64_t* cols, const double* vals, std::size_t nnz,
                     const double* G, std::int64_t N, std::int64_t S, std::int64_t* bi,
                     double* bv) {
    if (nnz == 0) {  // every dot product is 0: numpy's argmax gives the first vector
        *bi = 0;
        *bv = 0.0;
        return;
    }
    double best = -std::numeric_limits<double>::infinity();
    std::int64_t arg = 0;
    for (std::int64_t k = 0; k < N; ++k) {
        const double* g = G + k * S;
        double d0 = 0.0, d1 = 0.0, d2 = 0.0, d3 = 0.0;
        std::size_t t = 0;
        for (; t + 4 <= nnz; t += 4) {
            d0 += g[cols[t]] * vals[t];
            d1 += g[cols[t + 1]] * vals[t + 1];
            d2 += g[cols[t + 2]] * vals[t + 2];
            d3 += g[cols[t + 3]] * vals[t + 3];
        }
        for (; t < nnz; ++t) d0 += g[cols[t]] * vals[t];
        const double d = (d0 + d1) + (d2 + d3);
        if (d > best) {
            best = d;
            arg = k;
        }
    }
    *bi = arg;
    *bv = best;
}

// best_alpha(J (M, S), G (N, S), support) -> (argmax_k G[k]·J[m], max) per row m.
// ``support`` (may be empty: all columns) lists the columns where rows of J can be non-zero.
py::tuple best_alpha(darr J, darr G, iarr support) {
    need(J.ndim() == 2 && G.ndim() == 2, "best_alpha: J and G must be 2-D");
    const std::int64_t M = J.shape(0), S = J.shape(1), N = G.shape(0);
    need(G.shape(1) == S, "best_alpha: J and G must have the same number of columns");
    need(N > 0, "best_alpha: G must have at least one row");
    const std::int64_t ns = support.shape(0);
    const std::int64_t* sp = support.data();
    for (std::int64_t t = 0; t < ns; ++t)
        need(sp[t] >= 0 && sp[t] < S, "best_alpha: support index out of range");
    iarr idx(M);
    darr val(M);
    const double* j = J.data();
    const double* g = G.data();
    std::int64_t* pi = idx.mutable_data();
    double* pv = val.mutable_data();
    {
        py::gil_scoped_release release;
        std::vector<std::int64_t> cols;
        std::vector<double> vals;
        cols.reserve(static_cast<std::size_t>(ns > 0 ? ns : S));
        vals.reserve(static_cast<std::size_t>(ns > 0 ? ns : S));
        for (std::int64_t m = 0; m < M; ++m) {
            cols.clear();
            vals.clear();
            const double* row = j + m * S;
            if (ns > 0) {
                for (std::int64_t t = 0; t < ns; ++t)
                    if (row[sp[t]] != 0.0) {
                        cols.push_back(sp[t]);
                        vals.push_back(row[sp[t]]);
                    }
            } else {
                for (std::int64_t s = 0; s < S; ++s)
                    if (row[s] != 0.0) {
                        cols.push_back(s);
                        vals.push_back(row[s]);
                    }
            }
            best_row(cols.data(), vals.data(), cols.size(), g, N, S, pi + m, pv + m);
        }
    }
    return py::make_tuple(idx, val);
}

// best_alpha_csr(indptr (M+1), indices, data, G (N, S)): best_alpha for CSR rows.
py::tuple best_alpha_csr(iarr indptr, iarr indices, darr data, darr G) {
    need(G.ndim() == 2 && G.shape(0) > 0, "best_alpha_csr: G must be a non-empty 2-D array");
    const std::int64_t M = indptr.shape(0) - 1, S = G.shape(1), N = G.shape(0);
    need(M >= 0 && indices.shape(0) == data.shape(0), "best_alpha_csr: bad CSR arrays");
    const std::int64_t* ip = indptr.data();
    const std::int64_t* ix = indices.data();
    const double* dv = data.data();
    for (std::int64_t t = 0; t < indices.shape(0); ++t)
        need(ix[t] >= 0 && ix[t] < S, "best_alpha_csr: column index out of range");
    need(M == 0 || (ip[0] >= 0 && ip[M] <= indices.shape(0)), "best_alpha_csr: bad indptr");
    iarr idx(M);
    darr val(M);
    std::int64_t* pi = idx.mutable_data();
    double* pv = val.mutable_data();
    {
        py::gil_scoped_release release;
        for (std::int64_t m = 0; m < M; ++m)
            best_row(ix + ip[m], dv + ip[m], static_cast<std::size_t>(ip[m + 1] - ip[m]),
                     G.data(), N, S, pi + m, pv + m);
    }
    return py::make_tuple(idx, val);
}

// Sawtooth correction of one dense belief row from the points k (skipped unless gain_k < 0).
inline double point_corr(const double* row, std::int64_t k, const std::int64_t* ip,
                         const std::int64_t* ix, const double* vx, const double* gn,
                         double corr) {
    if (!(gn[k] < 0.0)) return corr;
    double phi = std::numeric_limits<double>::infinity();
    for (std::int64_t t = ip[k]; t < ip[k + 1]; ++t) {
        const double x = row[ix[t]];
        if (x <= 0.0) return corr;
        const double r = x * vx[t];
        if (r < phi) phi = r;
    }
    if (std::isfinite(phi)) {
        const double v = phi * gn[k];
        if (v < corr) corr = v;
    }
    return corr;
}

// sawtooth(B (M, S), corner (S), indptr (n+1), idx, inv, gain (n), order, pivot_ptr (S+1),
//          n_sorted) -> (M,), with inv = 1 / b_k(s) for the stored point entries
// UB(b) = c·b + min(0, min_k φ_k(b) gain_k), φ_k(b) = min_{s in supp b_k} b(s) / b_k(s).
// Points 0..n_sorted-1 are bucketed by a pivot state of their support (order[pivot_ptr[s] ..
// pivot_ptr[s+1]]): a point can only matter when its pivot is in supp(b), so only the buckets
// of supp(b) are scanned; later points are scanned one by one.
darr sawtooth(darr B, darr corner, iarr indptr, iarr idx, darr inv, darr gain, iarr order,
              iarr pivot_ptr, std::int64_t n_sorted) {
    need(B.ndim() == 2, "sawtooth: B must be 2-D");
    const std::int64_t M = B.shape(0), S = B.shape(1), n = gain.shape(0);
    need(corner.shape(0) == S, "sawtooth: corner must have one value per state");
    need(indptr.shape(0) == n + 1, "sawtooth: indptr must have n + 1 entries");
    need(n_sorted >= 0 && n_sorted <= n, "sawtooth: n_sorted out of range");
    need(n_sorted == 0 || (pivot_ptr.shape(0) == S + 1 && order.shape(0) >= n_sorted),
         "sawtooth: pivot_ptr must have S + 1 entries");
    const std::int64_t* ip = indptr.data();
    const std::int64_t* ix = idx.data();
    need(ip[n] <= idx.shape(0) && idx.shape(0) == inv.shape(0), "sawtooth: bad point arrays");
    need(ip[0] >= 0, "sawtooth: bad indptr");
    for (std::int64_t k = 0; k < n; ++k) need(ip[k] <= ip[k + 1], "sawtooth: bad indptr");
    for (std::int64_t t = ip[0]; t < ip[n]; ++t)
        need(ix[t] >= 0 && ix[t] < S, "sawtooth: state index out of range");
    const std::int64_t* od = order.data();
    const std::int64_t* pp = pivot_ptr.data();
    if (n_sorted > 0) {
        need(pp[0] == 0 && pp[S] == n_sorted, "sawtooth: pivot_ptr must span the sorted points");
        for (std::int64_t t = 0; t < n_sorted; ++t)
            need(od[t] >= 0 && od[t] < n, "sawtooth: order out of range");
    }
    darr out(M);
    const double* b = B.data();
    const double* c = corner.data();
    const double* vx = inv.data();
    const double* gn = gain.data();
    double* po = out.mutable_data();
    {
        py::gil_scoped_release release;
        for (std::int64_t m = 0; m < M; ++m) {
            const double* row = b + m * S;
            double base = 0.0;
            double corr = 0.0;
            for (std::int64_t s = 0; s < S; ++s) {
                if (row[s] == 0.0) continue;
                base += row[s] * c[s];
                if (n_sorted > 0)
                    for (std::int64_t t = pp[s]; t < pp[s + 1]; ++t)
                        corr = point_corr(row, od[t], ip, ix, vx, gn, corr);
            }
            for (std::int64_t k = n_sorted; k < n; ++k)
                corr = point_corr(row, k, ip, ix, vx, gn, corr);
            po[m] = base + corr;
        }
    }
    return out;
}

// check_csr(indptr (A, S+1), indices, n_cols): raises unless the stacked CSR is well formed.
// successors() trusts arrays that passed this check (trimpomdp's CSRStack runs it once).
void check_csr(iarr indptr, iarr indices, std::int64_t n_cols) {
    need(indptr.ndim() == 2, "check_csr: indptr must be 2-D");
    const std::int64_t A = indptr.shape(0), R = indptr.shape(1) - 1, nnz = indices.shape(0);
    const std::int64_t* ip = indptr.data();
    const std::int64_t* ix = indices.data();
    for (std::int64_t a = 0; a < A; ++a)
        for (std::int64_t r = 0; r < R; ++r)
            need(ip[a * (R + 1) + r] >= 0 && ip[a * (R + 1) + r] <= ip[a * (R + 1) + r + 1] &&
                     ip[a * (R + 1) + r + 1] <= nnz,
                 "check_csr: indptr must be non-decreasing and within the indices");
    for (std::int64_t t = 0; t < nnz; ++t)
        need(ix[t] >= 0 && ix[t] < n_cols, "check_csr: column index out of range");
}

// successors(b (S), indptr (A, S+1), indices, data, O (A, S, nO), J_out (A, nO, S))
//   -> (P (A, nO), support): J_out[a, o, s'] = (b T[a])(s') O[a, s', o] (overwritten), support
// the sorted states s' reachable under some action. T[a] is CSR (rows s, columns s'), checked
// once by check_csr.
py::tuple successors(darr b, iarr indptr, iarr indices, darr data, darr O, darr J_out) {
    need(O.ndim() == 3 && indptr.ndim() == 2 && J_out.ndim() == 3,
         "successors: O and J_out must be 3-D and indptr 2-D");
    const std::int64_t A = O.shape(0), S = O.shape(1), nO = O.shape(2);
    need(b.shape(0) == S && indptr.shape(0) == A && indptr.shape(1) == S + 1,
         "successors: shapes of b, indptr and O disagree");
    need(J_out.shape(0) == A && J_out.shape(1) == nO && J_out.shape(2) == S,
         "successors: J_out must be (A, nO, S)");
    need(data.shape(0) == indices.shape(0), "successors: indices and data differ in length");
    const std::int64_t* ip = indptr.data();
    const std::int64_t* ix = indices.data();
    darr P({A, nO});
    const double* bp = b.data();
    const double* dv = data.data();
    const double* op = O.data();
    double* pp = P.mutable_data();
    double* jp = J_out.mutable_data();
    std::vector<std::int64_t> all;
    {
        py::gil_scoped_release release;
        std::fill(pp, pp + A * nO, 0.0);
        std::fill(jp, jp + A * nO * S, 0.0);
        std::vector<std::int64_t> supp;
        for (std::int64_t s = 0; s < S; ++s)
            if (bp[s] != 0.0) supp.push_back(s);
        std::vector<double> pred(static_cast<std::size_t>(S));
        std::vector<char> hit(static_cast<std::size_t>(S)), any(static_cast<std::size_t>(S));
        std::vector<std::int64_t> out;
        for (std::int64_t a = 0; a < A; ++a) {
            const std::int64_t* row = ip + a * (S + 1);
            out.clear();
            for (std::int64_t s : supp) {
                const double w = bp[s];
                for (std::int64_t t = row[s]; t < row[s + 1]; ++t) {
                    const std::int64_t s2 = ix[t];
                    if (!hit[s2]) {
                        hit[s2] = 1;
                        pred[s2] = 0.0;
                        out.push_back(s2);
                    }
                    pred[s2] += w * dv[t];
                }
            }
            for (std::int64_t s2 : out) {
                hit[s2] = 0;
                const double q = pred[s2];
                if (q == 0.0) continue;
                if (!any[s2]) {
                    any[s2] = 1;
                    all.push_back(s2);
                }
                const double* orow = op + (a * S + s2) * nO;
                for (std::int64_t o = 0; o < nO; ++o) {
                    const double v = q * orow[o];
                    jp[(a * nO + o) * S + s2] = v;
                    pp[a * nO + o] += v;
                }
            }
        }
        std::sort(all.begin(), all.end());
    }
    iarr support(static_cast<py::ssize_t>(all.size()));
    std::copy(all.begin(), all.end(), support.mutable_data());
    return py::make_tuple(P, support);
}

// dominated(G (N, S), alpha (S), tol) -> mask of rows with G[k] <= alpha + tol everywhere.
barr dominated(darr G, darr alpha, double tol) {
    need(G.ndim() == 2 && alpha.ndim() == 1 && G.shape(1) == alpha.shape(0),
         "dominated: G must be (N, S) and alpha (S,)");
    const std::int64_t N = G.shape(0), S = G.shape(1);
    barr out(N);
    bool* po = out.mutable_data();
    const double* g = G.data();
    const double* al = alpha.data();
    {
        py::gil_scoped_release release;
        for (std::int64_t k = 0; k < N; ++k) {
            const double* row = g + k * S;
            bool dom = true;
            for (std::int64_t s = 0; s < S; ++s)
                if (!(row[s] <= al[s] + tol)) {
                    dom = false;
                    break;
                }
            po[k] = dom;
        }
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(trimpomdp_kernels, m) {
    m.doc() = "Native kernels of trimpomdp's generic POMDP solvers (see solvers/README.md).";
    m.attr("ABI") = ABI;
    m.attr("__version__") = "0.1.0";
    m.def("best_alpha", &best_alpha, py::arg("J"), py::arg("G"), py::arg("support"),
          "Per row of J: (argmax_k G[k]·J[m], max).");
    m.def("check_csr", &check_csr, py::arg("indptr"), py::arg("indices"), py::arg("n_cols"),
          "Raise unless a stacked CSR matrix is well formed.");
    m.def("best_alpha_csr", &best_alpha_csr, py::arg("indptr"), py::arg("indices"),
          py::arg("data"), py::arg("G"), "best_alpha for CSR rows.");
    m.def("sawtooth", &sawtooth, py::arg("B"), py::arg("corner"), py::arg("indptr"),
          py::arg("idx"), py::arg("inv"), py::arg("gain"), py::arg("order"),
          py::arg("pivot_ptr"), py::arg("n_sorted"), "Sawtooth upper bound at each row of B.");
    m.def("successors", &successors, py::arg("b"), py::arg("indptr"), py::arg("indices"),
          py::arg("data"), py::arg("O"), py::arg("J_out"),
          "Successor probabilities P and unnormalised beliefs J (into J_out), and the support.");
    m.def("dominated", &dominated, py::arg("G"), py::arg("alpha"), py::arg("tol"),
          "Rows of G pointwise <= alpha + tol.");
}
