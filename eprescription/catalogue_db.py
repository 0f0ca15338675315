"""SQL of the drug catalogue: search, drugs, interaction rules, sources, and the staged upsert behind CSV imports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

import asyncpg
import msgspec

from api.db import Conn
from eprescription.catalogue_schemas import Drug, DrugSource, Interaction, InteractionSide

_DRUG_COLUMNS = """d.id, d.inn, d.ingredients, d.strength, d.dosage_form, d.route, d.atc_code, d.rx_required,
    d.control_class, d.prescription_type, d.is_medicine, d.registration_number, d.trade_names, d.pregnancy_warning,
    d.weight_based_dosing, d.active, d.source_code AS source, d.source_ref, s.demo_data"""
_DRUG_FROM = "drugs d JOIN drug_sources s ON s.code = d.source_code"

# word_similarity >= 0.6 (pg_trgm's default) misses one-letter slips in mid-length names ("glicazid" scores 0.58
# against "gliclazid", "metphormin" 0.5 against "metformin"); 0.5 catches them, and typo matches are only offered
# when nothing matches as typed, so the looser bar adds no noise to ordinary prefix searches.
TYPO_THRESHOLD = 0.5
# Below this many characters a "typo" is just another prefix: fuzzy matching would add noise and cost, no recall.
MIN_FUZZY_CHARS = 4
# One or two letters match at the start of a word only: "ha" means Hapacol, not every "pharma" in the catalogue.
MIN_ANYWHERE_CHARS = 3


def _drug(row: asyncpg.Record) -> Drug:
    return msgspec.convert({k: v for k, v in row.items() if k != "total"}, Drug)


def _like_escape(text: str) -> str:
    """Make ``%``, ``_`` and ``\\`` literal in a LIKE pattern (PostgreSQL's default escape is ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(conn: Conn, query: str, atc_prefix: str | None, limit: int, offset: int) -> tuple[list[Drug], int]:
    """Active drugs matching ``query``, best first.

    Literal matches (every word of the query somewhere in the folded names, codes and form; one or two letters only
    at the start of a word) come in tiers: exact ATC code or registration number; ATC prefix (``atc_prefix`` is
    given for code-like queries only); name + strength starting with the query; a word starting with it; the query
    anywhere; its words anywhere ("paracetamol gói").
    Only when nothing matches literally are typo matches returned, closest first: a slip of the finger is then the
    likely reason, and the costly similarity scan never runs for the prefixes a doctor types most of the time.
    """
    async with conn.transaction(readonly=True):
        # One round trip sets, for this transaction only, the typo threshold and custom plans (every pattern below
        # is a constant the planner sees: a 2-letter pattern scans, a longer one uses the trigram index), and folds
        # the query with the very search_fold() that built search_doc.
        settings = await conn.fetchrow(
            """SELECT set_config('pg_trgm.word_similarity_threshold', $2, true) AS threshold,
                      set_config('plan_cache_mode', 'force_custom_plan', true) AS plans, search_fold($1) AS folded""",
            query, str(TYPO_THRESHOLD))
        assert settings is not None
        folded: str = settings["folded"]
        pattern = _like_escape(folded)
        words = sorted((f"%{w}%" for w in pattern.split()), key=len, reverse=True)  # most selective first
        fuzzy = folded if len(folded) >= MIN_FUZZY_CHARS and atc_prefix is None else None
        rows = await conn.fetch(
            f"""WITH literal AS MATERIALIZED (
                  SELECT d.id, CASE WHEN d.atc_code = $6 OR d.registration_number = upper($7) THEN 0
                                    WHEN d.atc_code LIKE $6 || '%' THEN 1
                                    WHEN d.name_fold LIKE $3 THEN 2
                                    WHEN d.search_doc LIKE $3 OR d.search_doc LIKE $4 THEN 3
                                    WHEN d.search_doc LIKE $2 THEN 4
                                    ELSE 5 END AS tier, NULL::real AS similarity, lower(d.inn) AS inn, d.name_fold
                  FROM drugs d
                  WHERE d.active AND d.search_doc LIKE ($5::text[])[1] AND d.search_doc LIKE ALL ($5::text[])
                    AND (NOT $10 OR d.search_doc LIKE $3 OR d.search_doc LIKE $4)
                ), matched AS (
                  SELECT * FROM literal
                  UNION ALL
                  SELECT d.id, 6, word_similarity($1, d.search_doc), lower(d.inn), d.name_fold FROM drugs d
                  WHERE $1::text IS NOT NULL AND NOT EXISTS (SELECT FROM literal) AND d.active AND $1 <% d.search_doc
                ), page AS (
                  -- rank and count narrow rows; only the page's rows are read in full
                  SELECT m.*, count(*) OVER () AS total FROM matched m
                  ORDER BY m.tier, m.similarity DESC, m.inn, m.name_fold, m.id LIMIT $8 OFFSET $9
                )
                SELECT {_DRUG_COLUMNS}, p.total
                FROM page p JOIN drugs d ON d.id = p.id JOIN drug_sources s ON s.code = d.source_code
                ORDER BY p.tier, p.similarity DESC, p.inn, p.name_fold, p.id""",  # noqa: S608 - fixed fragments
            fuzzy, f"%{pattern}%", f"{pattern}%", f"% {pattern}%", words, atc_prefix, query, limit, offset,
            len(folded) < MIN_ANYWHERE_CHARS)
    return [_drug(r) for r in rows], rows[0]["total"] if rows else 0


async def browse(conn: Conn, limit: int, offset: int) -> tuple[list[Drug], int]:
    rows = await conn.fetch(
        f"""SELECT {_DRUG_COLUMNS}, count(*) OVER () AS total FROM {_DRUG_FROM}
            WHERE d.active ORDER BY lower(d.inn), d.name_fold, d.id LIMIT $1 OFFSET $2""",  # noqa: S608
        limit, offset)
    return [_drug(r) for r in rows], rows[0]["total"] if rows else 0


async def drug(conn: Conn, drug_id: UUID) -> Drug | None:
    row = await conn.fetchrow(f"SELECT {_DRUG_COLUMNS} FROM {_DRUG_FROM} WHERE d.id = $1", drug_id)  # noqa: S608
    return _drug(row) if row else None


async def interactions_of(conn: Conn, drug_id: UUID) -> list[Interaction]:
    """Every interaction rule one of whose sides names the drug (by ingredient or ATC class), most severe first."""
    rows = await conn.fetch(
        """SELECT i.id, i.severity, i.effect, i.advice, i.effect_vi, i.advice_vi, i.source_code AS source,
                  i.source_ref, s.demo_data, m.a_matches, i.a_kind, i.a_code, i.a_label, i.b_kind, i.b_code, i.b_label
           FROM drugs d
           -- the sides' indexes (migration 0018): the codes that can name this drug (stored, 0020), not a scan of
           -- every rule
           JOIN drug_interactions i ON i.a_kind || ':' || i.a_code = ANY (d.side_keys)
                                    OR i.b_kind || ':' || i.b_code = ANY (d.side_keys)
           CROSS JOIN LATERAL (SELECT i.a_kind || ':' || i.a_code = ANY (d.side_keys) AS a_matches) m
           JOIN drug_sources s ON s.code = i.source_code
           WHERE d.id = $1
           ORDER BY array_position(ARRAY['contraindicated', 'major', 'moderate', 'minor'], i.severity),
                    CASE WHEN m.a_matches THEN i.b_label ELSE i.a_label END""", drug_id)
    found = []
    for r in rows:
        a = InteractionSide(kind=r["a_kind"], code=r["a_code"], label=r["a_label"])
        b = InteractionSide(kind=r["b_kind"], code=r["b_code"], label=r["b_label"])
        found.append(Interaction(
            id=r["id"], severity=r["severity"], drug=a if r["a_matches"] else b, other=b if r["a_matches"] else a,
            effect=r["effect"], advice=r["advice"], effect_vi=r["effect_vi"], advice_vi=r["advice_vi"],
            source=r["source"], source_ref=r["source_ref"], demo_data=r["demo_data"]))
    return found


async def sources(conn: Conn) -> list[DrugSource]:
    rows = await conn.fetch(
        """SELECT s.code, s.title, s.demo_data, s.notes, s.updated_at,
                  (SELECT count(*) FROM drugs d WHERE d.source_code = s.code) AS drugs,
                  (SELECT count(*) FROM drug_interactions i WHERE i.source_code = s.code) AS interactions
           FROM drug_sources s ORDER BY s.demo_data, s.code""")
    return [msgspec.convert(dict(r), DrugSource) for r in rows]


# ---------------------------------------------------------------- CSV import (all inside one transaction)

_IMPORT_LOCK = 7_240_005  # advisory lock: imports run one at a time, so their counts describe what they did
STAGED_COLUMNS = ("row_no", "inn", "ingredients", "strength", "dosage_form", "route", "atc_code", "rx_required",
                  "control_class", "is_medicine", "registration_number", "trade_names", "pregnancy_warning",
                  "weight_based_dosing", "active", "source_ref")


async def stage(conn: Conn, records: Iterable[Sequence[object]]) -> None:
    """Lock the catalogue for this transaction and COPY the validated rows into a temporary table."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK)
    await conn.execute(
        """CREATE TEMP TABLE drug_import_rows (
             row_no integer PRIMARY KEY, inn text NOT NULL, ingredients text[] NOT NULL, strength text NOT NULL,
             dosage_form text NOT NULL, route text NOT NULL, atc_code text, rx_required boolean NOT NULL,
             control_class text NOT NULL, is_medicine boolean NOT NULL, registration_number text,
             trade_names text[] NOT NULL, pregnancy_warning text NOT NULL, weight_based_dosing boolean NOT NULL,
             active boolean NOT NULL, source_ref text NOT NULL
           ) ON COMMIT DROP""")
    await conn.copy_records_to_table("drug_import_rows", records=records, columns=STAGED_COLUMNS)


async def duplicate_rows(conn: Conn) -> list[list[int]]:
    """Groups of staged rows that would be the same catalogue drug (the key the upsert uses), in file order."""
    rows = await conn.fetch(
        """SELECT array_agg(row_no ORDER BY row_no) AS rows FROM drug_import_rows
           GROUP BY drug_key(registration_number, inn, strength, dosage_form) HAVING count(*) > 1
           ORDER BY min(row_no)""")
    return [list(r["rows"]) for r in rows]


async def upsert_source(conn: Conn, code: str, title: str, demo_data: bool, notes: str) -> bool:
    """Record the dataset (an existing one keeps its title and notes: they describe it, not the last file loaded);
    False when ``code`` already names a dataset of the other kind (demo versus real)."""
    stored: str | None = await conn.fetchval(
        """INSERT INTO drug_sources (code, title, demo_data, notes) VALUES ($1, $2, $3, $4)
           ON CONFLICT (code) DO UPDATE SET updated_at = now() WHERE drug_sources.demo_data = excluded.demo_data
           RETURNING code""", code, title, demo_data, notes)
    return stored is not None


async def upsert_staged(conn: Conn, source_code: str, first_row: int, last_row: int) -> tuple[int, int]:
    """Insert or update the staged rows ``first_row..last_row`` by drug key; (inserted, updated).

    Rows equal to what is stored are left alone (and not counted), so re-importing a file changes nothing. Existing
    rows keep their id: prescriptions that point at a drug survive a catalogue refresh.
    """
    rows = await conn.fetch(
        """INSERT INTO drugs AS d (inn, ingredients, strength, dosage_form, route, atc_code, rx_required,
                                   control_class, is_medicine, registration_number, trade_names, pregnancy_warning,
                                   weight_based_dosing, active, source_code, source_ref)
           SELECT r.inn,
                  ARRAY(SELECT search_fold(i.name) FROM unnest(r.ingredients) WITH ORDINALITY AS i (name, n)
                        ORDER BY i.n),
                  r.strength, r.dosage_form, r.route, r.atc_code, r.rx_required, r.control_class, r.is_medicine,
                  r.registration_number, r.trade_names, r.pregnancy_warning, r.weight_based_dosing, r.active, $1,
                  r.source_ref
           FROM drug_import_rows r WHERE r.row_no BETWEEN $2 AND $3
           ON CONFLICT (drug_key) DO UPDATE SET
             inn = excluded.inn, ingredients = excluded.ingredients, strength = excluded.strength,
             dosage_form = excluded.dosage_form, route = excluded.route, atc_code = excluded.atc_code,
             rx_required = excluded.rx_required, control_class = excluded.control_class,
             is_medicine = excluded.is_medicine, registration_number = excluded.registration_number,
             trade_names = excluded.trade_names, pregnancy_warning = excluded.pregnancy_warning,
             weight_based_dosing = excluded.weight_based_dosing, active = excluded.active,
             source_code = excluded.source_code, source_ref = excluded.source_ref, updated_at = now()
           WHERE (d.inn, d.ingredients, d.strength, d.dosage_form, d.route, d.atc_code, d.rx_required,
                  d.control_class, d.is_medicine, d.registration_number, d.trade_names, d.pregnancy_warning,
                  d.weight_based_dosing, d.active, d.source_code, d.source_ref)
                 IS DISTINCT FROM
                 (excluded.inn, excluded.ingredients, excluded.strength, excluded.dosage_form, excluded.route,
                  excluded.atc_code, excluded.rx_required, excluded.control_class, excluded.is_medicine,
                  excluded.registration_number, excluded.trade_names, excluded.pregnancy_warning,
                  excluded.weight_based_dosing, excluded.active, excluded.source_code, excluded.source_ref)
           RETURNING (xmax = 0) AS inserted""", source_code, first_row, last_row)
    inserted = sum(1 for r in rows if r["inserted"])
    return inserted, len(rows) - inserted


async def after_bulk_load(conn: Conn) -> None:
    """Merge the search index's pending list and refresh statistics, so searches right after an import stay fast."""
    await conn.execute("SELECT drugs_after_bulk_load()")
