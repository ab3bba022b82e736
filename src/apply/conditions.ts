/**
 * Conditions (`if`): jexl expressions over the record as currently stored, compiled once and
 * cached. The same cache serves write conditions at apply time and list filters at read time.
 *
 * No jexl functions or transforms are registered, so evaluation depends only on the record:
 * deterministic and side-effect free on every replica.
 */
import jexlModule from "jexl";
import type { StoredRecord } from "../store/mod.ts";

interface AstNode {
  type: string;
  operator?: string;
  value?: unknown;
  left?: AstNode;
  right?: AstNode;
  test?: AstNode;
  consequent?: AstNode;
  alternate?: AstNode;
  subject?: AstNode;
  expr?: AstNode;
  from?: AstNode;
  args?: AstNode[];
  [key: string]: unknown;
}

interface CompiledExpression {
  evalSync(context: Record<string, unknown>): unknown;
  _getAst(): AstNode | null;
}

interface JexlInstance {
  compile(expression: string): CompiledExpression;
}

// jexl ships CommonJS; its default export carries the Jexl class.
const JexlClass = (jexlModule as unknown as { Jexl: new () => JexlInstance }).Jexl;

/** An `if` that cannot be accepted: bad syntax, a function call, an unknown name, not a boolean. */
export class ConditionError extends Error {
  /** Stable code. */
  readonly code = "invalid_condition";
  /** Extra problem members for the client (e.g. the unknown identifier and the allowed ones). */
  readonly details: Readonly<Record<string, unknown>>;
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = "ConditionError";
    this.details = details;
  }
}

/** The names a condition can read at top level; `null` because jexl has no null literal. */
export const CONDITION_IDENTIFIERS: readonly string[] = Object.freeze([
  "pk",
  "sk",
  "data",
  "_created_at",
  "_updated_at",
  "_version",
  "null",
]);

/**
 * Deepest accepted condition: brackets nested, and levels of the parsed tree (each operator of a
 * chain such as `a || b || c` is one level). Bounds the recursion of jexl's parser and evaluator
 * far below the stack size, whatever CONDITION_BYTES_MAX allows.
 */
export const CONDITION_DEPTH_MAX = 64;

/**
 * Most tree nodes inside the element filters (`list[.x == 1]`) of one condition. An element
 * filter runs its expression once per element, so this bounds the evaluation work to this many
 * steps per element of the record's data; measured at about 1 µs per step.
 */
export const CONDITION_FILTER_NODES_MAX = 16;

const ALLOWED = new Set(CONDITION_IDENTIFIERS);
const COMPARISONS = new Set(["==", "!=", "<", "<=", ">", ">=", "in"]);
const BINARY_OPERATORS = new Set([
  ...COMPARISONS,
  "+",
  "-",
  "*",
  "/",
  "//",
  "%",
  "^",
  "&&",
  "||",
]);

/**
 * Whether an AST node always yields a boolean. Iterative so that no tree can exhaust the stack;
 * a missing node is not boolean.
 */
function yieldsBoolean(root: AstNode | null | undefined): boolean {
  const pending: (AstNode | null | undefined)[] = [root];
  while (pending.length > 0) {
    const node = pending.pop();
    if (node === undefined || node === null) return false;
    switch (node.type) {
      case "Literal":
        if (typeof node.value !== "boolean") return false;
        break;
      case "UnaryExpression":
        if (node.operator !== "!") return false;
        break;
      case "BinaryExpression":
        if (COMPARISONS.has(node.operator ?? "")) break;
        if (node.operator !== "&&" && node.operator !== "||") return false;
        pending.push(node.left, node.right);
        break;
      case "ConditionalExpression":
        pending.push(node.consequent, node.alternate);
        break;
      default:
        return false;
    }
  }
  return true;
}

/**
 * The first function or transform call in the tree, if any. Apply-time checks use it unchanged
 * (including its depth cut-off) so that old log messages are judged as they always were.
 */
function findCall(node: unknown, depth = 0): string | null {
  if (depth > 256 || typeof node !== "object" || node === null) return null;
  const n = node as AstNode;
  if (n.type === "FunctionCall") return String(n.name);
  for (const key of Object.keys(n)) {
    const child = n[key];
    if (Array.isArray(child)) {
      for (const c of child) {
        const found = findCall(c, depth + 1);
        if (found !== null) return found;
      }
    } else if (typeof child === "object" && child !== null) {
      const found = findCall(child, depth + 1);
      if (found !== null) return found;
    }
  }
  return null;
}

/**
 * An upper bound on how deeply jexl's parser nests for `expression`, or a number over
 * CONDITION_DEPTH_MAX as soon as it is exceeded. Checked before jexl parses: its parser starts a
 * sub-parser, holding a copy of the text so far, for each bracket and each `?` (whose branches
 * stay open until the enclosing bracket closes), so deep nesting costs quadratic memory — 64 KiB
 * of `true ? ` ran out of a 4 GiB heap.
 */
function parserDepth(expression: string): number {
  // Per open bracket, the `?` opened inside it; the bottom entry is the top level.
  const ternaries: number[] = [0];
  let depth = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (c === "'" || c === '"') {
      // Skip a string literal (backslash escapes the next character); an unterminated quote
      // is left for the parser to reject.
      let j = i + 1;
      while (j < expression.length && expression[j] !== c) j += expression[j] === "\\" ? 2 : 1;
      if (j < expression.length) i = j;
      continue;
    }
    if (c === "(" || c === "[" || c === "{") {
      ternaries.push(0);
      depth++;
    } else if (c === "?") {
      ternaries[ternaries.length - 1]!++;
      depth++;
    } else if ((c === ")" || c === "]" || c === "}") && ternaries.length > 1) {
      depth -= ternaries.pop()! + 1;
    }
    if (depth > CONDITION_DEPTH_MAX) return depth;
  }
  return depth;
}

interface Frame {
  readonly node: unknown;
  readonly depth: number;
  /** Inside the expression of an element filter (`list[.x == 1]`), run once per element. */
  readonly inFilter: boolean;
  /** What the node is, for the message when it is missing. */
  readonly role: string;
}

const incomplete = (role: string) =>
  new ConditionError(`Cannot parse condition: ${role} is missing (the expression is incomplete)`);

/**
 * The accept-time rules every new condition must meet, checked with an explicit stack over
 * every node jexl can produce (see jexl 2.3.0 parser/handlers.js): no missing operand, no call,
 * bounded depth, known top-level names, finite numbers, and element filters of bounded cost.
 */
function acceptProblem(root: AstNode): ConditionError | null {
  const pending: Frame[] = [{ node: root, depth: 1, inFilter: false, role: "the expression" }];
  let filterNodes = 0;
  while (pending.length > 0) {
    const { node, depth, inFilter, role } = pending.pop()!;
    if (typeof node !== "object" || node === null) return incomplete(role);
    if (depth > CONDITION_DEPTH_MAX) {
      return new ConditionError(
        `Cannot use condition: nested deeper than ${CONDITION_DEPTH_MAX} levels`,
        { limit: CONDITION_DEPTH_MAX },
      );
    }
    if (inFilter && ++filterNodes > CONDITION_FILTER_NODES_MAX) {
      return new ConditionError(
        `Cannot use condition: element filters hold more than ${CONDITION_FILTER_NODES_MAX} operands and operators`,
        { limit: CONDITION_FILTER_NODES_MAX },
      );
    }
    const n = node as AstNode;
    const next = depth + 1;
    const push = (child: unknown, childRole: string, childInFilter = inFilter) =>
      pending.push({ node: child, depth: next, inFilter: childInFilter, role: childRole });
    switch (n.type) {
      case "Literal":
        if (typeof n.value === "number" && !Number.isFinite(n.value)) {
          return new ConditionError(
            "Cannot use condition: a number literal is too large for a double (conditions compare doubles)",
          );
        }
        break;
      case "Identifier": {
        if (n.from !== undefined) {
          // Member access (`data.a`, `'s'.length`): any name, on whatever the left side yields.
          push(n.from, `the object before .${String(n.value)}`);
          break;
        }
        const name = String(n.value);
        // A relative name (`.x`) reads the element inside an element filter, the record outside.
        const readsRecord = n.relative !== true || !inFilter;
        if (readsRecord && !ALLOWED.has(name)) {
          return new ConditionError(
            `Cannot use condition: unknown identifier '${name}' (a condition can read ${
              CONDITION_IDENTIFIERS.join(", ")
            }; fields are data.<name>)`,
            { identifier: name, allowed: [...CONDITION_IDENTIFIERS] },
          );
        }
        // jexl reads `.data` of a falsy element from the record, and `data` is the record's
        // data: either would make one filter step cost the size of the data.
        if (inFilter && name === "data") {
          return new ConditionError(
            "Cannot use condition: an element filter ([.x == …]) cannot read data; compare the element's fields with literals",
            { identifier: name },
          );
        }
        break;
      }
      case "UnaryExpression":
        if (n.operator !== "!") {
          return new ConditionError("Cannot parse condition: unknown operator");
        }
        push(n.right, "the operand of !");
        break;
      case "BinaryExpression":
        if (!BINARY_OPERATORS.has(n.operator ?? "")) {
          return new ConditionError("Cannot parse condition: unknown operator");
        }
        push(n.left, `the left operand of ${n.operator}`);
        push(n.right, `the right operand of ${n.operator}`);
        break;
      case "ConditionalExpression":
        push(n.test, "the test of ? :");
        push(n.consequent, "the branch after ?");
        push(n.alternate, "the branch after :");
        break;
      case "FilterExpression":
        if (n.relative === true && inFilter) {
          return new ConditionError(
            "Cannot use condition: an element filter ([.x == …]) cannot hold another element filter",
          );
        }
        push(n.subject, "the list before [");
        push(n.expr, "the expression inside [ ]", inFilter || n.relative === true);
        break;
      case "ArrayLiteral":
        if (!Array.isArray(n.value)) return incomplete("an array literal");
        for (const element of n.value) push(element, "an array element");
        break;
      case "ObjectLiteral":
        if (typeof n.value !== "object" || n.value === null) return incomplete("an object literal");
        for (const [key, value] of Object.entries(n.value)) push(value, `the value of key ${key}`);
        break;
      case "FunctionCall":
        return new ConditionError(
          `Cannot use condition: functions and transforms are not available (${String(n.name)})`,
        );
      default:
        return new ConditionError(`Cannot parse condition: unexpected ${String(n.type)}`);
    }
  }
  return null;
}

const NOT_BOOLEAN =
  "Cannot use condition: it must evaluate to a boolean (a comparison, !, &&, ||, or true/false)";

/** The result of evaluating a condition: `error` covers throws and non-boolean results. */
export type Verdict = "true" | "false" | "error";

interface Entry {
  /** jexl's compilation, or why it fails to parse. */
  parsed?: CompiledExpression | ConditionError;
  /** What apply uses: the compiled expression, or why it cannot run (the checks of old). */
  usable?: CompiledExpression | ConditionError;
  /** Whether a new request may carry it: null, or the accept-time rule it breaks. */
  accepted?: ConditionError | null;
}

/**
 * A bounded cache of compiled conditions. Two judgements share it: {@linkcode compile} decides
 * whether a client may send an expression (today's strict rules); {@linkcode evaluate} judges
 * expressions already in the log exactly as every earlier version did, so that replicas on old
 * and new versions agree during a rolling deploy.
 */
export class ConditionCache {
  private readonly jexl = new JexlClass();
  private readonly cache = new Map<string, Entry>();
  /** UTF-16 length of every cached expression: a compiled one costs ~20 heap bytes per unit. */
  private chars = 0;

  /**
   * At most `entriesMax` compiled conditions and `charsMax` UTF-16 units of expression text (the
   * second bounds memory when clients send many long conditions), oldest evicted first.
   */
  constructor(
    private readonly entriesMax: number,
    private readonly charsMax: number = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Compiles (or fetches) `expression` for a new request; throws {@linkcode ConditionError}
   * (and nothing else, whatever the string) if it is unusable.
   */
  compile(expression: string): CompiledExpression {
    const entry = this.entry(expression);
    entry.accepted ??= this.acceptance(expression, entry);
    if (entry.accepted !== null) throw entry.accepted;
    const usable = this.usable(expression, entry);
    // The accept-time rules include the apply-time ones, so this is only a safety net.
    if (usable instanceof ConditionError) throw usable;
    return usable;
  }

  private entry(expression: string): Entry {
    let entry = this.cache.get(expression);
    if (entry === undefined) {
      entry = {};
      // Evict the oldest entries: bounded memory whatever clients send.
      while (
        this.cache.size > 0 &&
        (this.cache.size >= this.entriesMax || this.chars + expression.length > this.charsMax)
      ) {
        const oldest = this.cache.keys().next().value!;
        this.cache.delete(oldest);
        this.chars -= oldest.length;
      }
      this.cache.set(expression, entry);
      this.chars += expression.length;
    }
    return entry;
  }

  private acceptance(expression: string, entry: Entry): ConditionError | null {
    if (parserDepth(expression) > CONDITION_DEPTH_MAX) {
      return new ConditionError(
        `Cannot use condition: nested deeper than ${CONDITION_DEPTH_MAX} levels`,
        { limit: CONDITION_DEPTH_MAX },
      );
    }
    const parsed = this.parsed(expression, entry);
    if (parsed instanceof ConditionError) return parsed;
    let problem: ConditionError | null;
    try {
      problem = acceptProblem(parsed._getAst()!);
    } catch (error) {
      // Only a bug here can throw; the client still gets a 400, never a 500.
      const reason = error instanceof Error ? error.message : String(error);
      problem = new ConditionError(`Cannot use condition: ${reason}`);
    }
    if (problem !== null) return problem;
    const usable = this.usable(expression, entry);
    return usable instanceof ConditionError ? usable : null;
  }

  private parsed(expression: string, entry: Entry): CompiledExpression | ConditionError {
    if (entry.parsed === undefined) {
      try {
        const compiled = this.jexl.compile(expression);
        // jexl compiles an empty or unfinished expression ("", "((") to a null tree.
        entry.parsed = compiled._getAst() === null
          ? new ConditionError("Cannot parse condition: it is empty or incomplete")
          : compiled;
      } catch (error) {
        // Parse errors, and a RangeError should the parser's recursion run out of stack.
        const reason = error instanceof Error ? error.message : String(error);
        entry.parsed = new ConditionError(`Cannot parse condition: ${reason}`);
      }
    }
    return entry.parsed;
  }

  /** The apply-time compilation: the rules of old, but no string can make it throw. */
  private usable(expression: string, entry: Entry): CompiledExpression | ConditionError {
    if (entry.usable === undefined) {
      const parsed = this.parsed(expression, entry);
      if (parsed instanceof ConditionError) {
        entry.usable = parsed;
      } else {
        const ast = parsed._getAst();
        const call = findCall(ast);
        entry.usable = call !== null
          ? new ConditionError(
            `Cannot use condition: functions and transforms are not available (${call})`,
          )
          : yieldsBoolean(ast)
          ? parsed
          : new ConditionError(NOT_BOOLEAN);
      }
    }
    return entry.usable;
  }

  /**
   * Evaluates `expression` against `record` (null when absent). Anything but `true` or `false` —
   * including a thrown error — is `"error"`, which callers treat as false. Uses the apply-time
   * checks only, so a message accepted by an earlier version gets the verdict it always got.
   */
  evaluate(expression: string, record: StoredRecord | null): Verdict {
    let result: unknown;
    try {
      const compiled = this.usable(expression, this.entry(expression));
      if (compiled instanceof ConditionError) return "error";
      result = compiled.evalSync(
        record === null ? ABSENT : {
          pk: record.pk,
          sk: record.sk,
          data: JSON.parse(record.dataJson),
          _created_at: record.createdAt,
          _updated_at: record.updatedAt,
          _version: record.version,
          null: null,
        },
      );
    } catch {
      return "error";
    }
    if (result === true) return "true";
    if (result === false) return "false";
    return "error";
  }
}

// jexl has no null literal: `null` is an identifier, so the context defines it.
const ABSENT = Object.freeze({
  pk: null,
  sk: null,
  data: null,
  _created_at: null,
  _updated_at: null,
  _version: null,
  null: null,
});
