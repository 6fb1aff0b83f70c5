"""``semhash dedup``: exact and near-duplicate documents, from the stored codes and embeddings.

Pipeline (no torch: everything runs on what SQLite already holds):

1. **Exact duplicates.** Every text is normalised (casefold, whitespace collapsed) and hashed
   (blake2b, 64 bits); documents with equal hashes form an *exact group*, reason ``exact``.
2. **Candidates.** Which stage runs depends on the collection's size (``neighbours="auto"``, the default;
   :func:`~semhash.dedup.options.pair_candidate_stage`, reported as ``DedupStats.stage``): up to ``EXACT_LIMIT``
   (20,000) documents *every pair* is a candidate (``all-pairs``: one blocked matrix product of the stored
   embeddings, :mod:`semhash.dedup.allpairs`; the result is exactly all-pairs cosine, because there the
   32-bit codes, not the cost, limit recall); above it every pair at or above the threshold inside k-means
   cells of the full embeddings, each document against its 2 nearest cells (``cells``,
   :mod:`semhash.dedup.cells`: no k to waste, no topical code blocks; at 10^6 it replaced the budgeted
   code join that found 0.11 of the planted copies). Its pair budget (``CELL_PAIR_BUDGET`` a document)
   only binds on corpora that are one big family of near copies; what it drops is counted in
   ``DedupStats.unverified_pairs``. ``neighbours=0`` is the code join alone at any size (the behaviour
   before ``auto``), ``"all"`` every pair at any size, ``K`` the code join plus ``K`` nearest embeddings.
   **The code join**: all pairs of documents whose 32-bit codes are within ``radius`` bits. Codes are first
   reduced to their distinct values; pairs of distinct
   codes come from a *split-radius hash join*: with ``a = radius // 2`` and ``b = radius - a``, two codes
   ``u, v`` with ``hamming(u, v) <= radius`` always share a point ``x`` with ``hamming(u, x) <= b`` and
   ``hamming(v, x) <= a`` (walk from ``u`` towards ``v``). So every distinct code is entered in a sorted
   table under each of its ``<= a``-bit variants, each code's ``<= b``-bit variants are looked up in it
   (binary search), and found pairs are checked with one popcount. At radius 2 that is 33 table entries
   and 33 look-ups per distinct code: linear in the number of codes, exact (no pair within the radius is
   missed), and with no ``n^2`` term. Measured against the alternatives (``BENCHMARKS.md``): faiss
   ``IndexBinaryFlat`` range search is exact but scans ``n^2`` pairs (about 8 s at 10^5 codes, hours at
   10^6); faiss ``IndexBinaryHash`` with ``nflip = radius`` probes all ``C(32, <= r)`` buckets per code
   (529 at radius 2: 5 s at 10^5); pigeonhole chunking (``r + 1`` chunks of 8-11 bits) makes groups of
   thousands of codes at 10^6. Documents sharing one code are all candidates of each other.
3. **Verification.** Each candidate pair gets the cosine of its stored (unit) embeddings. Pairs are never
   listed before verification: small code blocks (a few documents per code) are verified pair by pair in
   one vectorised pass, large ones with one matrix product per distinct code against its own and its
   neighbour codes' documents (BLAS), so coarse codes cost flops, not memory. Pairs below
   ``min(threshold, KEEP_FLOOR)`` are only counted (in the histogram). A pair is a near-duplicate when
   ``cosine >= threshold``; optionally a lexical *number veto* rejects a pair whose texts each hold a
   number the other lacks ("sold in 1998 for $2.5 billion" vs "... for $1.8 billion"). A number missing on
   one side only (truncation) is no veto. **Copy, not topic** (issue 22): a long document's pooled embedding
   says what it is about, so when either text of a pair is longer than one encoder window, the pair must
   also share ``min_overlap`` (0.5) of its word pairs (2-word shingles) (exact Jaccard over the stored texts,
   :mod:`semhash.overlap`); pairs of two short texts keep the cosine alone. Each duplicate says what
   decided it (``measure``: ``text``, ``cosine`` or ``cosine+overlap``, with the ``overlap``).
4. **Clusters.** Exact groups are merged first (they are one unit; a twin of a member is reported as an
   ``exact`` duplicate of that member, whatever document is kept). Then, with ``cluster="centre"``
   (the default), units are visited in ``keep`` order and each unvisited one becomes a centre that takes
   every unvisited unit within the threshold *of the centre itself*: every member is provably similar
   to its cluster's representative, so A~B and B~C never pull an unrelated C in with A (no chaining).
   ``cluster="components"`` takes connected components instead (union-find over accepted pairs): it
   finds more of a family of copies of copies, at the risk of chaining; each duplicate then names the
   document it matched (``matched_id``), which is the representative itself whenever that pair passed.

Every candidate pair at or above the floor, with its Hamming distance and cosine, is kept in the
:class:`DedupResult`, so :meth:`DedupResult.rethreshold` re-clusters at another threshold (down to the
floor), clustering or keep rule without touching the database, :meth:`DedupResult.to_size` picks the
threshold that leaves a given number of documents (``--target`` / ``--keep-fraction``: a binary search over
``rethreshold``), and :meth:`DedupResult.histogram` shows where the similarities of all candidate pairs lie.

``keep`` picks each cluster's representative deterministically: ``first`` (lowest id, i.e. indexed
first), ``longest`` / ``shortest`` (characters), ``newest`` (file mtime); ties always go to the lowest id.

Defaults (``DEFAULT_RADIUS = 3``, ``DEFAULT_THRESHOLD = 0.8``) were calibrated with
``benchmarks/bench_dedup.py`` on a 20 Newsgroups near-duplicate set (best F1 there is at cosine 0.77; 0.80 is
within 0.01 of it with higher precision) and checked on MRPC; radius 3 is the largest that keeps 10^6
documents under a minute on 2 cores. The learned 32-bit codes are coarse: at radius 3 the code join holds
88% of the 20NG near-duplicate pairs and 59% of MRPC's paraphrases, which is why collections up to
``EXACT_LIMIT`` documents compare every pair (20NG F1 0.848, MRPC 0.724 at the defaults, against 0.833 and
0.732 for all-pairs cosine with connected components; with the overlap check, 20NG 0.890, MRPC unchanged).
``DEFAULT_MIN_OVERLAP`` was calibrated on the validation half of a long-document set built from
``/usr/share/doc`` (``benchmarks/datasets/build_longdoc.py``). See ``BENCHMARKS.md`` ("Deduplication", "Dedup: copy, not
topic") for the curves and numbers.

Modules, one concept each: ``options`` (:class:`DedupOptions`, defaults, limits), ``text`` (normalisation,
its hash, the number veto), ``join`` (step 2), ``verify`` (step 3), ``clusters`` (step 4 and
:class:`DedupResult`), ``pipeline`` (the in-index service, :func:`dedup_index`), ``against``
(:func:`find_existing`: new files against the index; the one path that needs the embedding and hashing
models, imported lazily inside it), ``write`` (``--write-unique``: :func:`write_unique`), ``ann``
(neighbour candidates), ``exact`` (the all-pairs stage), ``overlap`` (the word-shingle check of long pairs),
``distributed`` (``--engine ray``: the candidate products on Ray tasks, the same pairs).
"""

from semhash.dedup.against import AgainstResult, find_existing, match_against
from semhash.dedup.clusters import DedupResult, DedupStats, DocTable, build_clusters
from semhash.dedup.distributed import DedupEngine
from semhash.dedup.join import candidate_pairs, distinct_code_pairs, flip_masks
from semhash.dedup.options import (
    CLUSTER_METHODS,
    DEFAULT_MIN_OVERLAP,
    DEFAULT_RADIUS,
    DEFAULT_THRESHOLD,
    EXACT_LIMIT,
    KEEP_FLOOR,
    KEEP_RULES,
    MAX_RADIUS,
    CandidateStage,
    DedupOptions,
    check_radius,
    pair_candidate_stage,
    parse_neighbours,
)
from semhash.dedup.pipeline import dedup_index, dedup_store
from semhash.dedup.text import normalize_text, normalized_text_hash, numbers_conflict
from semhash.dedup.verify import FINE_BINS, SMALL_BLOCK, CodeBlocks, pairwise_cosine
from semhash.dedup.write import WritePlan, check_new_folder, plan_unique, write_unique

__all__ = [
    "CLUSTER_METHODS",
    "DEFAULT_MIN_OVERLAP",
    "DEFAULT_RADIUS",
    "DEFAULT_THRESHOLD",
    "EXACT_LIMIT",
    "FINE_BINS",
    "KEEP_FLOOR",
    "KEEP_RULES",
    "MAX_RADIUS",
    "SMALL_BLOCK",
    "AgainstResult",
    "CandidateStage",
    "CodeBlocks",
    "DedupEngine",
    "DedupOptions",
    "DedupResult",
    "DedupStats",
    "DocTable",
    "WritePlan",
    "build_clusters",
    "candidate_pairs",
    "check_new_folder",
    "check_radius",
    "dedup_index",
    "dedup_store",
    "distinct_code_pairs",
    "find_existing",
    "flip_masks",
    "match_against",
    "normalize_text",
    "normalized_text_hash",
    "numbers_conflict",
    "pair_candidate_stage",
    "pairwise_cosine",
    "parse_neighbours",
    "plan_unique",
    "write_unique",
]
