// Package dp holds hegate's differential-privacy noise samplers and its
// privacy accountant.
//
// # Sampling
//
// Sampler draws exact discrete Gaussian and discrete Laplace noise with the
// algorithms of Canonne, Kamath and Steinke, "The Discrete Gaussian for
// Differential Privacy" (NeurIPS 2020, arXiv:2004.00010), Algorithms 1-3.
// Parameters are rationals (math/big.Rat) and every step is integer or
// rational arithmetic, so the output follows the stated distribution
// exactly, with no floating-point error and none of the leaks that
// floating-point noise samplers are known for. Uniform integers are drawn
// by rejection from random bits, without modulo bias. Randomness comes from
// an io.Reader: crypto/rand.Reader in production, a seeded deterministic
// reader in tests.
//
// Real-valued noise is released on a lattice: to add noise of standard
// deviation sigma at granularity g (say g = 2^-20), draw
// k ~ N_Z(0, (sigma/g)^2) with
//
//	sigma2, err := dp.SigmaToLattice(sigma, g) // (sigma/g)^2, exact
//	k, err := sampler.DiscreteGaussian(sigma2)
//
// and release value + k*g, where the value has been rounded to a multiple of
// g. Its privacy is that of the Gaussian mechanism with the same sigma:
// rho = Delta^2 / (2 sigma^2) for L2 sensitivity Delta (CKS 2020, Theorems 4
// and 14).
//
// # Accounting
//
// Privacy loss is accounted in zero-concentrated differential privacy
// (zCDP; Bun and Steinke, TCC 2016), which composes by addition: k queries of
// rho each cost k*rho. Budgets are stated to users as (epsilon, delta)-DP
// and converted with the tight bound of CKS 2020 (Corollary 13):
//
//   - GaussianRho and SigmaForRho relate sigma, sensitivity and rho.
//   - ZCDPToDelta and ZCDPToEpsilon convert rho to (epsilon, delta);
//     ZCDPToEpsilonSimple is the looser classical bound.
//   - RhoForBudget gives the largest rho an (epsilon, delta) budget allows;
//     SigmaForQuery the sigma of a single (epsilon, delta) query.
//   - GaussianDelta, GaussianEpsilon and AnalyticGaussianSigma are the exact
//     privacy curve of one continuous Gaussian mechanism (Balle and Wang,
//     ICML 2018), for comparison; the discrete Gaussian is accounted
//     through zCDP.
//   - Rho counts privacy loss in exact integer units of 1e-9 rho, so that
//     budget arithmetic never drifts: spends round up (RhoUnitsCeil),
//     capacities round down (RhoUnitsFloor).
//   - QueriesBought compares how many queries a budget buys under zCDP
//     composition and under basic composition.
//
// Accounting uses float64; the calibration functions round toward the safe
// side. Only sampling must avoid floating point, and it does.
//
// Every function reports bad arguments (negative, zero, NaN, infinite, too
// large) as an error wrapping ErrInvalidParameter; none panics. The package
// has no global state; a Sampler is not safe for concurrent use.
package dp
