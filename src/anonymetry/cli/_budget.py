"""``anonymetry budget grant|show`` — the privacy-budget ledger (no privacy logic here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from anonymetry.analytics.ledger import BudgetLedger
from anonymetry.cli._common import console, fail, print_json
from anonymetry.policy import default_policy, load_policy
from anonymetry.privacy.accountant import DEFAULT_ACCOUNTANT

app = typer.Typer(help="Grant and show privacy budgets (per dataset and analyst).\n\n"
                  "Example: anonymetry budget grant --ledger ledger/ --analyst alice --epsilon 3",
                  no_args_is_help=True)


@app.command("grant")
def grant(
    ledger: Annotated[Path, typer.Option("--ledger", help="Ledger directory.")],
    analyst: Annotated[str, typer.Option("--analyst", help="Who may spend the budget.")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="ε granted per period.")],
    delta: Annotated[float, typer.Option("--delta", help="δ granted per period.")] = 0.0,
    dataset: Annotated[str, typer.Option(
        "--dataset", help="Dataset name, or * for each dataset separately.")] = "*",
    accountant: Annotated[str, typer.Option(
        "--accountant", help="basic, pld (default) or rdp.")] = DEFAULT_ACCOUNTANT,
    as_json: Annotated[bool, typer.Option("--json", help="Print the grant as JSON.")] = False,
) -> None:
    """Set an analyst's budget (per period, if the policy sets one).

    Example: anonymetry budget grant --ledger ledger/ --analyst alice --epsilon 3 --delta 1e-6
    """
    budget = BudgetLedger(ledger).grant(analyst, epsilon, delta, dataset=dataset,
                                        accountant=accountant)
    if as_json:
        print_json({"analyst": analyst, "dataset": dataset, "accountant": accountant,
                    **budget.to_dict()})
    else:
        console.print(f"granted {analyst} on {dataset}: {budget} ({accountant} accountant)",
                      highlight=False)


@app.command("show")
def show(
    ledger: Annotated[Path, typer.Option("--ledger", help="Ledger directory.")],
    policy_path: Annotated[Path | None, typer.Option(
        "--policy", help="Policy whose default budget applies (default: the embedded one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ledger as JSON.")] = False,
) -> None:
    """Show grants and what each analyst has spent and has left.

    Example: anonymetry budget show --ledger ledger/ --json
    """
    if not ledger.is_dir():
        raise fail(f"--ledger {ledger}: no such ledger folder; create one with "
                   "'anonymetry budget grant --ledger DIR ...'")
    policy = load_policy(policy_path) if policy_path else default_policy()
    data = BudgetLedger(ledger, default_budget=policy.budgets).show()
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title=f"budget ledger {data['ledger']}")
    for col in ("analyst", "dataset", "period", "queries", "granted ε", "spent ε", "left ε",
                "spent δ", "accountant"):
        table.add_column(col)
    for a in data["accounts"]:
        table.add_row(a["analyst"], a["dataset"], str(a["period"]), str(a["queries"]),
                      f"{a['granted']['epsilon']:g}", f"{a['spent']['epsilon']:.4g}",
                      f"{a['remaining']['epsilon']:.4g}", f"{a['spent']['delta']:.3g}",
                      a["accountant"])
    console.print(table)
    for g in data["grants"]:
        console.print(f"grant: {g['analyst']} on {g['dataset']}: ε={g['epsilon']:g}, "
                      f"δ={g['delta']:g} ({g['accountant']})", highlight=False)
