"""`itn7 decisions`: the committee's decisions, from its workbook back into Démarche Numérique.

`workbook` reads and validates the decision columns of a session workbook and records them;
`apply` plans, per dossier, the state mutations they need (a dry run by default) and sends them.
"""
